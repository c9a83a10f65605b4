"""Deletion and insertion curves (Petsiuk et al. 2018, the RISE paper) and their two metrics.

    deletion   pixels are removed in the map's order (most important first, ``step`` per step) towards
               a substrate; the explained class's probability should fall fast: a LOWER area under
               the curve is better. The default substrate is zero in the model's input space (for
               mean/std models, the data set's mean colour; mid grey for the shipped model). A black
               substrate is available, but scattered black blobs are so far from natural pictures
               that on the shipped model a random smooth map deleted towards black beat every method
               on 2 of 3 pictures (chelsea 0.031 against 0.060 for Grad-CAM), while each map still
               beat its own reverse: black deletion then measures how fragile a class is to any black
               blob rather than the map.
    insertion  pixels are revealed in the same order over a blurred copy of the picture; the
               probability should rise fast: a HIGHER area is better

Every curve goes through the engine as one mask source: ``SoftMasks(make=...)`` builds the step masks
of a chunk on demand from the pixel ranks, so a 225-step curve never holds more than two chunks of
perturbed inputs. Areas use the trapezoid rule over the fraction of pixels changed, on [0, 1].
A curve metric keeps its curve with the Score (saved in the JSON as ``NAME_curve``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import engine
from ..errors import InputError
from ..methods.fills import make_fill
from .base import INSERTION_BLUR_SIGMA, Metric, Sample, _prepared, _target, auc, fit_map, pixel_ranks, register


@dataclass
class Curve:
    """One deletion or insertion curve. fractions, scores: (steps + 1,) float64; auc on [0, 1]."""

    kind: str  # "deletion" | "insertion"
    target: int
    fractions: np.ndarray
    scores: np.ndarray
    auc: float
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"kind": self.kind, "target": self.target, "auc": self.auc,
                "fractions": [round(float(v), 6) for v in self.fractions],
                "scores": [round(float(v), 6) for v in self.scores], "seconds": self.seconds}


class _StepMasks:
    """make(start, stop) for SoftMasks: step i keeps (deletion) or reveals (insertion) by rank."""

    def __init__(self, ranks: np.ndarray, counts: np.ndarray, reveal: bool):
        self.ranks = ranks[None]  # (1, H, W)
        self.counts = counts  # (steps + 1,) pixels changed at each step
        self.reveal = reveal

    def __call__(self, start: int, stop: int) -> np.ndarray:
        c = self.counts[start:stop, None, None]
        hidden = self.ranks < c  # (m, H, W): the c most important pixels
        return (hidden if self.reveal else ~hidden).astype(np.float32)


def step_counts(n_pixels: int, step: int) -> np.ndarray:
    """Pixels changed after each step: 0, step, 2 step, ..., n_pixels (the last step may be shorter)."""
    step = int(step)
    if step < 1:
        raise InputError(f"step must be a positive number of pixels, got {step}")
    n_steps = (n_pixels + step - 1) // step
    return np.minimum(np.arange(n_steps + 1, dtype=np.int64) * step, n_pixels)


def curve(model, image, map_, target=None, kind: str = "deletion", step: int | None = None,
          substrate="zero", blur_sigma: float = INSERTION_BLUR_SIGMA, chunk_size: int | None = None,
          progress: bool | None = False) -> Curve:
    """A deletion or insertion curve of ``map_`` for ``target`` (default: the predicted class).

    image: a path or RGB picture (prepared with the model's preprocessing) or a ``Prepared``. map_: (H, W) over the
    crop the model sees (coarser maps are resized). step: pixels per step (default: one row's worth,
    the RISE paper's 224 for a 224x224 input). substrate: what deleted pixels show (any fill of
    ``methods.base``: "black", "zero", "mean", a grey value...). Insertion starts from the picture
    blurred with a Gaussian of ``blur_sigma`` pixels.
    """
    if kind not in ("deletion", "insertion"):
        raise InputError(f"kind must be 'deletion' or 'insertion', not {kind!r}")
    t0 = time.perf_counter()
    x, crop, probs = _prepared(model, image)
    target = _target(model, probs, target)
    h, w = crop.shape[:2]
    ranks = pixel_ranks(fit_map(map_, h, w))
    counts = step_counts(h * w, step or w)
    if kind == "deletion":
        baseline = make_fill(model, crop, x, substrate)
    else:
        baseline = make_fill(model, crop, x, "blur", blur_sigma=blur_sigma)
    source = engine.SoftMasks(n=int(counts.size), make=_StepMasks(ranks, counts, reveal=kind == "insertion"))
    res = engine.run(model, x, baseline, source, chunk_size=chunk_size, progress=progress, desc=kind)
    scores = res.scores[:, target].astype(np.float64)
    fractions = counts / float(h * w)
    return Curve(kind, target, fractions, scores, auc(scores, fractions), time.perf_counter() - t0)


def deletion(model, image, map_, target=None, step=None, substrate="zero", **kw) -> Curve:
    """Deletion curve (lower AUC = more faithful). See ``curve``."""
    return curve(model, image, map_, target, "deletion", step=step, substrate=substrate, **kw)


def insertion(model, image, map_, target=None, step=None, blur_sigma: float = INSERTION_BLUR_SIGMA, **kw) -> Curve:
    """Insertion curve (higher AUC = more faithful). See ``curve``."""
    return curve(model, image, map_, target, "insertion", step=step, blur_sigma=blur_sigma, **kw)


# --------------------------------------------------------------------------- the metrics


class CurveMetric(Metric):
    """A metric that is the area under a curve of the sample; the Score keeps the curve."""

    digits = 3

    def curve(self, sample: Sample) -> Curve:
        """The curve of one map of one picture (measured once per sample)."""
        return sample.measure(self.name, lambda: curve(
            sample.model, sample.picture, sample.map, sample.target, self.name, step=sample.step,
            substrate=sample.substrate, blur_sigma=sample.blur_sigma, progress=sample.progress))

    def score(self, sample: Sample) -> float:
        return self.curve(sample).auc


@register
class Deletion(CurveMetric):
    name, direction, heading = "deletion", "lower", "deletion AUC"
    description = "deletion AUC: class probability as the most important pixels are removed first; area on [0, 1]"


@register
class Insertion(CurveMetric):
    name, direction, heading = "insertion", "higher", "insertion AUC"
    description = "insertion AUC: class probability as the most important pixels are revealed over a blur; area on [0, 1]"
