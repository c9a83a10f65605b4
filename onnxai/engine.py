"""The perturb-and-score loop every black-box method shares.

A mask source says how many perturbed inputs there are and how to composite a range of them into a
buffer; ``run`` walks the ranges chunk by chunk:

    worker thread:  source.composite(x, baseline, masks[i+1], out=buffer[(i+1) % 2])   # Numba, no GIL
    main thread:    scores[i] = model.run_batch(buffer[i % 2])                           # ORT, no GIL

so compositing of the next chunk overlaps inference of the current one (when inference runs on a
GPU; on the CPU the two would fight over the same cores, see ``run``). Only two chunk buffers ever
exist (memory O(chunk)), and the scores of all classes are kept, so several targets can be explained
from one set of forward passes. Tables use the same loop: a TableCoalitions source expands each mask
into one row per background row and folds their scores back into a weighted average.

Budgets that stop when the map is stable: ``run(..., check=fn)`` scores the end points first, then
streams the masks chunk by chunk and calls ``fn(done, scores[:done], input_scores, baseline_scores)``
after each chunk; fn returns (stop, note): stop ends the run there (the masks not reached are never
composited), note is shown on the progress bar (the current error). Chunks are a fixed function of
the model and the settings, so the same seed stops at the same sample, bit for bit.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import kernels
from .errors import InputError
from .model import TABLE_ROWS_PER_RUN

DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes for the two chunk buffers together
CHECK_CHUNK = 256  # at most this many masks per chunk when a convergence check runs between chunks


# --------------------------------------------------------------------------- mask sources


class MaskSource:
    """n perturbations of one input; ``composite`` writes masks[start:stop] into ``out``.

    Each mask becomes ``rows_per_mask`` model inputs (1 for pictures; one per background row for
    tables), and ``fold`` turns their (m * rows_per_mask, classes) scores into (m, classes).
    """

    n: int
    rows_per_mask = 1

    def composite(self, x: np.ndarray, baseline: np.ndarray, start: int, stop: int, out: np.ndarray) -> None:
        raise NotImplementedError

    def fold(self, scores: np.ndarray, m: int) -> np.ndarray:
        return scores

    def composite_end(self, which: int, x: np.ndarray, baseline: np.ndarray, out: np.ndarray) -> None:
        """Write end point ``which`` (0: the input itself, 1: the baseline) as ``rows_per_mask`` rows."""
        out[0] = x if which == 0 else baseline


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


@dataclass
class TableCoalitions(MaskSource):
    """Coalitions of table columns: mask i keeps x where masks[i] is 1 and takes the background row
    elsewhere, once per background row; the scores are averaged with the background weights.

    masks: (n, M) uint8; background: (b, M); weights: (b,) summing to 1.
    """

    masks: np.ndarray
    background: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        self.n = int(self.masks.shape[0])
        self.rows_per_mask = int(self.background.shape[0])
        self.weights = np.asarray(self.weights, np.float64)

    def composite(self, x, baseline, start, stop, out):
        kernels.composite_coalitions(x, self.background, self.masks[start:stop], out)

    def composite_end(self, which, x, baseline, out):
        """The full coalition (x on every row) or the empty one (the background rows themselves)."""
        mask = np.full((1, self.masks.shape[1]), 1 if which == 0 else 0, np.uint8)
        kernels.composite_coalitions(x, self.background, mask, out)

    def fold(self, scores, m):
        return np.tensordot(scores.reshape(m, self.rows_per_mask, -1), self.weights, axes=([1], [0]))


@dataclass
class RowSamples(MaskSource):
    """Perturbed table rows given outright (tabular LIME's samples): rows (n, M) in data space."""

    rows: np.ndarray

    def __post_init__(self):
        self.n = int(self.rows.shape[0])

    def composite(self, x, baseline, start, stop, out):
        out[...] = self.rows[start:stop]

    def composite_end(self, which, x, baseline, out):
        if which != 0:
            raise InputError("table rows sampled outright have no baseline end point")
        out[0] = x


# --------------------------------------------------------------------------- the loop


@dataclass
class RunResult:
    """scores: (n, classes) float32 for every perturbed input; with ``ends``, input_scores and
    baseline_scores (classes,) of the unperturbed input and of the baseline; times in seconds."""

    scores: np.ndarray
    forward_s: float
    composite_wait_s: float
    total_s: float
    chunk: int
    input_scores: np.ndarray | None = None
    baseline_scores: np.ndarray | None = None
    stopped: str | None = None  # with ``check``: "converged" or "max_samples"


def channels_first(model, arr: np.ndarray) -> np.ndarray:
    """(1, ...) model-space image -> (C, H, W) view in the kernels' axis order."""
    a = arr[0] if arr.ndim == 4 else arr
    return a if model.input.layout == "NCHW" else a.transpose(2, 0, 1)


def chunk_size_for(model, n: int, memory_budget: int = DEFAULT_MEMORY_BUDGET, chunk_size: int | None = None,
                   rows_per_mask: int = 1) -> int:
    """Masks per chunk. ``chunk_size`` is model rows per forward pass (default: the model's batch size
    for pictures, 16384 for tables); two chunk buffers must fit ``memory_budget``."""
    per_input = int(np.prod([d or 1 for d in model.input.shape[1:]])) * np.dtype(model.input.dtype).itemsize
    per_mask = max(per_input, 1) * rows_per_mask
    cap = max(1, int(memory_budget) // (2 * per_mask))
    if model.fixed_batch is not None and rows_per_mask == 1:
        return model.fixed_batch
    rows = chunk_size or (model.batch_size if model.input.is_image else max(model.batch_size, TABLE_ROWS_PER_RUN))
    return int(max(1, min(max(1, rows // rows_per_mask), cap, max(n, 1))))


def cast_into(src: np.ndarray, dst: np.ndarray) -> None:
    """float32 composites -> the model's input dtype: integers rounded to nearest and clipped to the
    dtype's range (a soft mask between two pixel values lands on a pixel value), floats converted."""
    if np.issubdtype(dst.dtype, np.integer):
        info = np.iinfo(dst.dtype)
        np.rint(src, out=src)
        np.clip(src, info.min, info.max, out=src)
    dst[...] = src


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
    overlap: bool | None = None,
    progress: bool | None = None,
    desc: str = "",
    ends: int = 0,
    check=None,
) -> RunResult:
    """Score every perturbation of ``x`` that ``source`` describes.

    x, baseline: (1, ...) arrays in the model's input space (after preprocessing), same shape.
    Returns the (n, classes) scores of ``kind`` ("probabilities" or "logits") for all classes.
    ends: also score the unperturbed input (1) and the baseline (2), after the perturbations and in
    the same chunks (``RunResult.input_scores`` / ``baseline_scores``): no separate calls.
    overlap: composite the next chunk in a worker thread while the model scores this one. None
    (default) overlaps when inference runs off the CPU (CUDA): on the 2-core CPU box, overlapping
    with CPU inference made the forward passes 3-5% slower (the worker competes with onnxruntime's
    threads) while compositing costs only ~2% of the run, so there the loop stays serial.
    check: callable (done, scores (done, classes), input_scores, baseline_scores) -> (stop, note),
    called after every chunk; with it the end points are scored first (in the first chunk) and the
    run stops as soon as ``stop`` is true (``RunResult.stopped``: "converged" or "max_samples").
    """
    if overlap is None:
        overlap = model.provider != "CPUExecutionProvider"
    x = model.check_batch(x)
    if x.shape[0] != 1:
        raise InputError(f"the engine explains one input at a time; got a batch of {x.shape[0]}")
    image = model.input.is_image
    rpm = int(source.rows_per_mask)
    n_masks = int(source.n)
    ends = int(ends)
    if ends not in (0, 1, 2):
        raise InputError(f"ends is 0, 1 (the input) or 2 (the input and the baseline), not {ends}")
    n = n_masks + ends
    t0 = time.perf_counter()
    chunk = chunk_size_for(model, n, memory_budget, chunk_size, rpm)
    if check is not None and chunk_size is None and model.fixed_batch is None:
        chunk = min(chunk, CHECK_CHUNK)  # tables' chunks are 16384 rows: too coarse to stop in
    staged = image and model.input.dtype != np.float32  # uint8 / float16 / float64 pictures
    if image:  # the kernels composite in float32, in the model's input space
        try:
            baseline = np.broadcast_to(baseline, x.shape)
        except ValueError:
            raise InputError(f"the baseline has shape {np.shape(baseline)} but the input is {x.shape}") from None
        x_v = np.ascontiguousarray(channels_first(model, x), dtype=np.float32)
        b_v = np.ascontiguousarray(channels_first(model, baseline), dtype=np.float32)
    else:  # a table row; the source holds its own background
        x_v, b_v = np.ascontiguousarray(x[0]), None
    shape = (chunk * rpm,) + x.shape[1:]
    buffers = [np.empty(shape, model.input.dtype) for _ in range(2 if overlap else 1)]
    stages = [np.empty(shape, np.float32) for _ in buffers] if staged else buffers

    first = ends if check is not None else 0  # positions of the masks: [first, first + n_masks)
    end_at = 0 if check is not None else n_masks  # positions of the end points

    def fill(i: int) -> int:
        start, stop = i * chunk, min(n, (i + 1) * chunk)
        rows = (stop - start) * rpm
        buf = stages[i % len(buffers)][:rows]
        view = buf if (not image or model.input.layout == "NCHW") else buf.transpose(0, 3, 1, 2)
        lo, hi = max(start, first), min(stop, first + n_masks)
        if hi > lo:
            source.composite(x_v, b_v, lo - first, hi - first, view[(lo - start) * rpm: (hi - start) * rpm])
        for j in range(max(start, end_at), min(stop, end_at + ends)):  # the end points
            source.composite_end(j - end_at, x_v, b_v, view[(j - start) * rpm: (j - start + 1) * rpm])
        if staged:
            cast_into(buf, buffers[i % len(buffers)][:rows])
        return stop - start

    n_chunks = (n + chunk - 1) // chunk
    scores = None
    forward = wait = 0.0
    bar = _progress_bar(n, progress, desc)
    pool = ThreadPoolExecutor(1, thread_name_prefix="onnxai-composite") if overlap and n_chunks > 1 else None
    stopped, done_at = None, n
    try:
        pending = pool.submit(fill, 0) if pool else None
        for i in range(n_chunks):
            tw = time.perf_counter()
            m = pending.result() if pool else fill(i)
            wait += time.perf_counter() - tw
            if pool and i + 1 < n_chunks:
                pending = pool.submit(fill, i + 1)
            tf = time.perf_counter()
            s = model.run_batch(buffers[i % len(buffers)][: m * rpm], kind)
            forward += time.perf_counter() - tf
            s = source.fold(s, m)
            if scores is None:
                scores = np.empty((n, s.shape[1]), s.dtype)
            scores[i * chunk: i * chunk + m] = s
            if bar is not None:
                bar.update(m)
            if check is not None:
                stop_at = i * chunk + m
                done = max(0, stop_at - ends)
                if stop_at >= ends:
                    halt, msg = check(done, scores[first:stop_at], scores[end_at] if ends else None,
                                      scores[end_at + 1] if ends == 2 else None)
                    if bar is not None and msg:
                        bar.set_postfix_str(msg, refresh=False)
                    if halt or stop_at == n:
                        stopped = "converged" if halt else "max_samples"
                        done_at = stop_at
                        break
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    if scores is None:
        scores = np.zeros((0, model.num_classes), np.float32)
    total = time.perf_counter() - t0
    masks_end = done_at if check is not None else first + n_masks  # a stopped run scored a prefix
    return RunResult(scores=scores[first:masks_end], forward_s=forward, composite_wait_s=wait, total_s=total,
                     chunk=chunk, input_scores=scores[end_at] if ends else None,
                     baseline_scores=scores[end_at + 1] if ends == 2 else None, stopped=stopped)
