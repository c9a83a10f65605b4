"""The perturb-and-score loop every black-box method shares.

A mask source says how many perturbed inputs there are and how to composite a range of them into a
buffer; ``run`` walks the ranges chunk by chunk:

    worker thread:  source.composite(x, baseline, masks[i+1], out=buffer[(i+1) % 2])   # Numba, no GIL
    main thread:    scores[i] = model.run_batch(buffer[i % 2])                           # ORT, no GIL

so compositing of the next chunk overlaps inference of the current one. Only two chunk buffers ever
exist (memory O(chunk)), and the scores of all classes are kept, so several targets can be explained
from one set of forward passes.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import kernels
from .errors import InputError

DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes for the two chunk buffers together


# --------------------------------------------------------------------------- mask sources


class MaskSource:
    """n perturbations of one input; ``composite`` writes masks[start:stop] into ``out``."""

    n: int

    def composite(self, x: np.ndarray, baseline: np.ndarray, start: int, stop: int, out: np.ndarray) -> None:
        raise NotImplementedError


@dataclass
class FeatureMasks(MaskSource):
    """Binary or soft weights per feature over a segment map. masks: (n, k); segments: (H, W) int32."""

    masks: np.ndarray
    segments: np.ndarray

    def __post_init__(self):
        self.n = int(self.masks.shape[0])
        self.segments = np.ascontiguousarray(self.segments, dtype=np.int32)

    def composite(self, x, baseline, start, stop, out):
        kernels.composite_features(x, baseline, self.segments, self.masks[start:stop], out=out, parallel=False)


@dataclass
class SoftMasks(MaskSource):
    """Per-pixel masks, either an (n, H, W) float32 array or made on demand by ``make(start, stop)``."""

    n: int
    masks: np.ndarray | None = None
    make: object = None  # callable (start, stop) -> (stop - start, H, W) float32

    def composite(self, x, baseline, start, stop, out):
        m = self.masks[start:stop] if self.masks is not None else self.make(start, stop)
        kernels.composite_soft(x, baseline, m, out=out, parallel=False)


@dataclass
class WindowMasks(MaskSource):
    """Occlusion windows: (n, 4) int32 [top, left, bottom, right]; inside shows the baseline."""

    windows: np.ndarray

    def __post_init__(self):
        self.n = int(self.windows.shape[0])

    def composite(self, x, baseline, start, stop, out):
        kernels.composite_windows(x, baseline, self.windows[start:stop], out=out, parallel=False)


# --------------------------------------------------------------------------- the loop


@dataclass
class RunResult:
    """scores: (n, classes) float32 for every perturbed input; times in seconds."""

    scores: np.ndarray
    forward_s: float
    composite_wait_s: float
    total_s: float
    chunk: int
    timings: dict = field(default_factory=dict)


def channels_first(model, arr: np.ndarray) -> np.ndarray:
    """(1, ...) model-space image -> (C, H, W) view in the kernels' axis order."""
    a = arr[0] if arr.ndim == 4 else arr
    return a if model.input.layout == "NCHW" else a.transpose(2, 0, 1)


def chunk_size_for(model, n: int, memory_budget: int = DEFAULT_MEMORY_BUDGET, chunk_size: int | None = None) -> int:
    """Inputs per chunk: the model's batch size, capped so that two buffers fit the memory budget."""
    per_input = int(np.prod([d or 1 for d in model.input.shape[1:]])) * np.dtype(model.input.dtype).itemsize
    cap = max(1, int(memory_budget) // (2 * max(per_input, 1)))
    chunk = chunk_size or model.batch_size
    if model.fixed_batch is not None:
        return model.fixed_batch
    return int(max(1, min(chunk, cap, max(n, 1))))


def _progress_bar(n, progress, desc):
    from . import _log

    if progress is None:
        progress = (not _log._quiet) and n >= 256 and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n, desc=desc or "onnxai", unit="input", file=sys.stderr, leave=False)


def run(
    model,
    x: np.ndarray,
    baseline: np.ndarray,
    source: MaskSource,
    kind: str = "probabilities",
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    overlap: bool = True,
    progress: bool | None = None,
    desc: str = "",
) -> RunResult:
    """Score every perturbation of ``x`` that ``source`` describes.

    x, baseline: (1, ...) arrays in the model's input space (after preprocessing), same shape.
    Returns the (n, classes) scores of ``kind`` ("probabilities" or "logits") for all classes.
    """
    x = model.check_batch(x)
    baseline = model.check_batch(np.broadcast_to(baseline, x.shape))
    if x.shape[0] != 1:
        raise InputError(f"the engine explains one input at a time; got a batch of {x.shape[0]}")
    model.require_image()
    n = int(source.n)
    t0 = time.perf_counter()
    chunk = chunk_size_for(model, n, memory_budget, chunk_size)
    x_chw = np.ascontiguousarray(channels_first(model, x))
    b_chw = np.ascontiguousarray(channels_first(model, baseline))
    buffers = [np.empty((chunk,) + x.shape[1:], model.input.dtype) for _ in range(2 if overlap else 1)]

    def fill(i: int) -> int:
        start, stop = i * chunk, min(n, (i + 1) * chunk)
        buf = buffers[i % len(buffers)][: stop - start]
        view = buf if model.input.layout == "NCHW" else buf.transpose(0, 3, 1, 2)
        source.composite(x_chw, b_chw, start, stop, view)
        return stop - start

    n_chunks = (n + chunk - 1) // chunk
    scores = None
    forward = wait = 0.0
    bar = _progress_bar(n, progress, desc)
    pool = ThreadPoolExecutor(1, thread_name_prefix="onnxai-composite") if overlap and n_chunks > 1 else None
    try:
        pending = pool.submit(fill, 0) if pool else None
        for i in range(n_chunks):
            tw = time.perf_counter()
            m = pending.result() if pool else fill(i)
            wait += time.perf_counter() - tw
            if pool and i + 1 < n_chunks:
                pending = pool.submit(fill, i + 1)
            tf = time.perf_counter()
            s = model.run_batch(buffers[i % len(buffers)][:m], kind)
            forward += time.perf_counter() - tf
            if scores is None:
                scores = np.empty((n, s.shape[1]), np.float32)
            scores[i * chunk: i * chunk + m] = s
            if bar is not None:
                bar.update(m)
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    if scores is None:
        scores = np.zeros((0, model.num_classes), np.float32)
    total = time.perf_counter() - t0
    return RunResult(scores=scores, forward_s=forward, composite_wait_s=wait, total_s=total, chunk=chunk)
