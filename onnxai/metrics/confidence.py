"""Average Drop / Increase in Confidence (Chattopadhyay et al. 2018, Grad-CAM++) and their four metrics.

With Y the class probability on the picture and O on the picture multiplied by the min-max normalised
map (in picture space, so black is what a zero weight shows):

    AD = 100/N sum max(0, Y - O) / Y   (lower is better)      IC = 100/N sum 1[Y < O]   (higher)

The "50" variants keep only the top half of the map (the rest is black): O50 in place of O. One engine
run of two inputs gives O and O50 for a map; a Sample measures it once for all four metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import engine
from ..methods.fills import make_fill
from .base import Metric, Sample, _prepared, _target, fit_map, minmax, pixel_ranks, register


def drop(y: float, o: float) -> float:
    """100 max(0, Y - O) / Y: the drop of the class probability, in % of Y (0 when Y is 0)."""
    return 100.0 * max(0.0, y - o) / y if y > 0 else 0.0


def increase(y: float, o: float) -> float:
    """100 when the class probability rose (Y < O), else 0."""
    return 100.0 * float(y < o)


@dataclass
class Confidence:
    """Y (probability on the picture), O (on picture x map) and O50 (top half of the map only)."""

    target: int
    y: float
    o: float
    o50: float

    drop = property(lambda self: drop(self.y, self.o), doc="AD of this picture (%)")
    increase = property(lambda self: increase(self.y, self.o), doc="IC of this picture (0 or 100)")
    drop50 = property(lambda self: drop(self.y, self.o50), doc="AD50 of this picture (%)")
    increase50 = property(lambda self: increase(self.y, self.o50), doc="IC50 of this picture (0 or 100)")


def keep_top(map01: np.ndarray, fraction: float = 0.5, ranks: np.ndarray | None = None) -> np.ndarray:
    """The [0, 1] map with all but its top ``fraction`` of pixels set to 0."""
    ranks = pixel_ranks(map01) if ranks is None else ranks
    keep = ranks < int(round(fraction * ranks.size))
    return np.where(keep, map01, 0.0).astype(np.float32)


def confidence(model, image, map_, target=None, top_fraction: float = 0.5) -> Confidence:
    """Y and O for Average Drop / Increase in Confidence on one picture (one batch of 2 inputs)."""
    x, crop, probs = _prepared(model, image)
    target = _target(model, probs, target)
    h, w = crop.shape[:2]
    m = fit_map(map_, h, w)
    m01 = minmax(m)
    masks = np.stack([m01, keep_top(m01, top_fraction, pixel_ranks(m))])  # (2, H, W)
    black = make_fill(model, crop, x, "black")  # b + m (x - b) = normalise(m * picture): affine preprocessing
    res = engine.run(model, x, black, engine.SoftMasks(n=2, masks=masks), progress=False)
    return Confidence(target, float(probs[target]), float(res.scores[0, target]), float(res.scores[1, target]))


def average_drop(confidences) -> float:
    """AD = 100/N sum max(0, Y - O) / Y over the pictures."""
    c = list(confidences)
    return float(np.mean([k.drop for k in c])) if c else float("nan")


def increase_in_confidence(confidences) -> float:
    """IC = 100/N sum 1[Y < O] over the pictures."""
    c = list(confidences)
    return float(np.mean([k.increase for k in c])) if c else float("nan")


# --------------------------------------------------------------------------- the metrics


class ConfidenceMetric(Metric):
    """A metric of Y and one observation of the sample's Confidence: ``of(y, o)`` with o = O or O50."""

    digits = 1
    observed = "o"  # "o": the picture times the whole map; "o50": times its top half

    def score(self, sample: Sample) -> float:
        c = sample.measure("confidence", lambda: confidence(sample.model, sample.picture, sample.map, sample.target))
        return self.of(c.y, getattr(c, self.observed))

    def of(self, y: float, o: float) -> float:
        raise NotImplementedError


@register
class AverageDrop(ConfidenceMetric):
    name, direction, heading, report_heading = "ad", "lower", "AD", "AD %"
    description = "AD: average drop (%) of the class probability on the picture times the min-max normalised map"
    of = staticmethod(drop)


@register
class IncreaseInConfidence(ConfidenceMetric):
    name, direction, heading, report_heading, text_digits = "ic", "higher", "IC", "IC %", 0
    description = "IC: share (%) of pictures whose class probability rises on the picture times the map"
    of = staticmethod(increase)


@register
class AverageDrop50(AverageDrop):
    name, heading, report_heading, observed = "ad50", "AD50", "AD50 %", "o50"
    description = "AD50: AD when only the top 50% of the map is kept (the rest of the picture black)"


@register
class IncreaseInConfidence50(IncreaseInConfidence):
    name, heading, report_heading, observed = "ic50", "IC50", "IC50 %", "o50"
    description = "IC50: IC when only the top 50% of the map is kept (the rest of the picture black)"
