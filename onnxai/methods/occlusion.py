"""Occlusion sensitivity: slide a window of fill over the picture and watch the class score drop.

    window, stride   window size and step in pixels of the model input ((h, w) or one int);
                     default: a seventh of the input side, half of that as stride
    fill             what the window shows: "mean" (MATLAB's default, the picture's mean colour),
                     "black", "blur", "zero", a grey value, "R,G,B" (see methods.base)
    clip_mode        "inside": every window lies inside the picture, the last one flush with the
                     border (captum's sliding windows); "clip": window centres on the stride grid,
                     windows clipped at the borders (MATLAB's MaskClipping "on")
    score            "probabilities" (default) or "logits": which score's drop is measured

Each pixel gets the mean score drop of the windows that cover it (captum's aggregation), so the map
is at the model's input resolution: positive where hiding the pixel lowers the target's score.
"""

from __future__ import annotations

import numpy as np

from .. import engine, kernels
from ..errors import InputError
from ..kernels._checks import pair
from .base import PerturbationMethod, Setup, check_score, deprecated_alias
from .fills import make_fill

DEFAULT_WINDOW_FRACTION = 7  # the default window is a seventh of the input side, the stride half of that


class Occlusion(PerturbationMethod):
    name = "occlusion"

    def __init__(self, window=None, stride=None, fill="mean", clip_mode: str = "inside",
                 score: str = "auto", progress: bool | None = None, chunk_size: int | None = None,
                 memory_budget: int = engine.DEFAULT_MEMORY_BUDGET, kind: str | None = None):
        score = deprecated_alias("Occlusion", "kind", "score", kind, score, "auto")
        if clip_mode not in ("inside", "clip"):
            raise InputError(f"clip_mode must be 'inside' or 'clip', not {clip_mode!r}")
        self.window = window
        self.stride = stride
        self.fill = fill
        self.clip_mode = clip_mode
        self._engine_options(check_score(score, allow_auto=True), progress, chunk_size, memory_budget)

    def geometry(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        if self.window is not None:
            win = pair(self.window, "window")
        else:
            win = (max(1, round(h / DEFAULT_WINDOW_FRACTION)), max(1, round(w / DEFAULT_WINDOW_FRACTION)))
        stride = pair(self.stride, "stride") if self.stride is not None else (max(1, win[0] // 2), max(1, win[1] // 2))
        if win[0] > h or win[1] > w:
            raise InputError(f"the window {win} is larger than the model input {h}x{w}")
        return win, stride

    def setup(self, model, x, crop, probs) -> Setup:
        h, w = crop.shape[:2]
        win, stride = self.geometry(h, w)
        windows = kernels.sliding_windows(h, w, win, stride, clip_mode=self.clip_mode)
        return Setup(engine.WindowMasks(windows), make_fill(model, crop, x, self.fill),
                     dict(windows=windows, window=win, stride=stride, hw=(h, w)))

    def aggregate(self, run, setup, targets):
        windows = setup.state["windows"]
        out = []
        for t in targets:
            drops = run.input_scores[t] - run.scores[:, t].astype(np.float64)  # (n,)
            out.append({"map": window_average(windows, drops, *setup.state["hw"]),
                        "extras": dict(windows=int(windows.shape[0]), window=list(setup.state["window"]),
                                       stride=list(setup.state["stride"]))})
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
