"""Occlusion sensitivity: slide a window of fill over the picture and watch the class score drop.

    window, stride   window size and step in pixels of the model input ((h, w) or one int);
                     default: a seventh of the input side, half of that as stride
    fill             what the window shows: "mean" (MATLAB's default, the picture's mean colour),
                     "black", "blur", "zero", a grey value, "R,G,B" (see methods.base)
    clip_mode        "inside": every window lies inside the picture, the last one flush with the
                     border (captum's sliding windows); "clip": window centres on the stride grid,
                     windows clipped at the borders (MATLAB's MaskClipping "on")
    kind             "probabilities" (default) or "logits": which score's drop is measured

Each pixel gets the mean score drop of the windows that cover it (captum's aggregation), so the map
is at the model's input resolution: positive where hiding the pixel lowers the target's score.
"""

from __future__ import annotations

import numpy as np

from .. import engine, kernels
from ..errors import InputError
from .base import Method, make_fill


class Occlusion(Method):
    name = "occlusion"

    def __init__(self, window=None, stride=None, fill="mean", clip_mode: str = "inside", kind: str = "probabilities",
                 progress: bool | None = None, chunk_size: int | None = None):
        if clip_mode not in ("inside", "clip"):
            raise InputError(f"clip_mode must be 'inside' or 'clip', not {clip_mode!r}")
        if kind not in ("probabilities", "logits"):
            raise InputError(f"kind must be 'probabilities' or 'logits', not {kind!r}")
        self.window = window
        self.stride = stride
        self.fill = fill
        self.clip_mode = clip_mode
        self.kind = kind
        self._progress = progress
        self._chunk_size = chunk_size

    def geometry(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        win = _pair(self.window) if self.window is not None else (max(1, round(h / 7)), max(1, round(w / 7)))
        stride = _pair(self.stride) if self.stride is not None else (max(1, win[0] // 2), max(1, win[1] // 2))
        if win[0] > h or win[1] > w:
            raise InputError(f"the window {win} is larger than the model input {h}x{w}")
        return win, stride

    def _explain(self, model, x, crop, probs, targets):
        h, w = crop.shape[:2]
        win, stride = self.geometry(h, w)
        windows = kernels.sliding_windows(h, w, win, stride, clip_mode=self.clip_mode)
        baseline = make_fill(model, crop, x, self.fill)
        res = engine.run(model, x, baseline, engine.WindowMasks(windows), kind=self.kind, progress=self._progress,
                         chunk_size=self._chunk_size, desc="occlusion")
        reference = probs if self.kind == "probabilities" else model.run_batch(x, "logits")[0]
        out = []
        for t in targets:
            drops = reference[t] - res.scores[:, t].astype(np.float64)  # (n,)
            map_ = window_average(windows, drops, h, w)
            e = self._explanation(model, t, probs, map_)
            e.extras.update(windows=int(windows.shape[0]), window=list(win), stride=list(stride))
            e.timings.update(forward=res.forward_s, engine=res.total_s)
            out.append(e)
        return out


def window_average(windows: np.ndarray, values: np.ndarray, h: int, w: int) -> np.ndarray:
    """Per pixel, the mean of ``values`` over the windows covering it (0 where none does).

    Uses 2-D difference arrays: O(n + h*w) whatever the window size.
    """
    total = np.zeros((h + 1, w + 1), np.float64)
    count = np.zeros((h + 1, w + 1), np.float64)
    t, l, b, r = (windows[:, i].astype(np.intp) for i in range(4))
    for acc, v in ((total, values), (count, np.ones_like(values))):
        np.add.at(acc, (t, l), v)
        np.add.at(acc, (t, r), -v)
        np.add.at(acc, (b, l), -v)
        np.add.at(acc, (b, r), v)
    total = total.cumsum(0).cumsum(1)[:h, :w]
    count = count.cumsum(0).cumsum(1)[:h, :w]
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(count > 0.5, total / np.maximum(count, 1), 0.0)
    return avg.astype(np.float32)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    if isinstance(v, str):
        parts = [p for p in v.replace("x", ",").split(",") if p.strip()]
        v = [int(p) for p in parts]
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        v = v * 2
    if len(v) != 2 or min(v) < 1:
        raise InputError(f"a window or stride is one positive int or (height, width), got {v!r}")
    return v
