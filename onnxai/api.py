"""The one-call entry point: ``onnxai.explain(model, image, method=..., target=..., **params)``."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .methods import METHODS
from .model import Model, load


def make_method(method: str, **params):
    """Build a method object by its CLI name ("lime", "occlusion", ...) with its parameters."""
    key = method.lower().replace("_", "-")
    if key not in METHODS:
        raise InputError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    cls = METHODS[key]
    try:
        return cls(**params)
    except TypeError as e:
        raise InputError(f"{method}: {e}") from None


def explain(model, image, method: str = "lime", target=None, **params):
    """Explain ``model``'s decision on ``image`` (a path or an RGB array) with ``method``.

    model: a Model or a path to a .onnx file. target: None/"top1", "topK", an index, a label or a
    list. Returns an Explanation, or a list of them for several targets.
    """
    if isinstance(model, (str, Path)):
        model = load(model)
    if not isinstance(model, Model):
        raise InputError("model must be an onnxai Model (onnxai.load(path)) or a path to a .onnx file")
    return make_method(method, **params).explain(model, image, target=target)
