"""How faithful is a map to the model? Faithfulness metrics as small registered classes, and whole evaluations.

    base.py        Column / Metric, ``@register`` and REGISTRY; Prepared pictures, Sample, small pieces
    curves.py      deletion and insertion curves (through the engine) and their AUC metrics
    confidence.py  Average Drop / Increase in Confidence and the top-50% variants
    evaluation.py  Score, score_map / score_explanation, Evaluation, evaluate; the SECONDS column

A new metric is one class in any module imported here (or in the caller's code): subclass ``Metric``,
set its name, direction and description, write ``score(sample)``, decorate it with ``@register``;
every table, CSV, JSON and report picks it up from REGISTRY.

``METRICS`` (the column names, "seconds" last) and ``BETTER`` ({column: "lower" | "higher"}) are read
live from the registry each time they are looked up; new code calls ``columns()``.
"""

from .base import (DIRECTIONS, REGISTRY, Column, Metric, Prepared, Sample, auc, fit_map, minmax, pixel_ranks,
                   prepare, random_map, register)
from .base import _prepared, _target  # noqa: F401  (used by callers of the old module)
from .curves import Curve, CurveMetric, curve, deletion, insertion, step_counts
from .confidence import (Confidence, ConfidenceMetric, average_drop, confidence, increase_in_confidence,
                         keep_top)
from .evaluation import (RANDOM, SECONDS, Evaluation, Score, columns, curve_metrics, evaluate, score_explanation,
                         score_map)


def __getattr__(name):
    if name == "METRICS":
        return tuple(c.name for c in columns())
    if name == "BETTER":
        return {c.name: c.direction for c in columns()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DIRECTIONS", "REGISTRY", "Column", "Metric", "register", "Prepared", "prepare", "Sample", "auc",
           "fit_map", "minmax", "pixel_ranks", "random_map", "Curve", "CurveMetric", "curve", "deletion",
           "insertion", "step_counts", "Confidence", "ConfidenceMetric", "average_drop", "confidence",
           "increase_in_confidence", "keep_top", "RANDOM", "SECONDS", "Evaluation", "Score", "columns",
           "curve_metrics", "evaluate", "score_explanation", "score_map", "METRICS", "BETTER"]
