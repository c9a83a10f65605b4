"""The one-call entry point: ``onnxai.explain(model, image, method=..., target=..., **params)``."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .methods import make_method
from .model import Model, load

TABLE_NAMES = {"lime": "lime-tabular"}  # the method a picture name means on table rows


def explain(model, image, method: str = "lime", target=None, cropped: bool = False, **params):
    """Explain ``model``'s decision on ``image`` (a path or an RGB array) with ``method``.

    model: a Model or a path to a .onnx file. target: None/"top1", "topK", an index, a label or a
    list. Returns an Explanation, or a list of them for several targets. For a table model, ``image``
    is an (n, columns) array of rows and the result a TabularExplanation ("kernel-shap" takes
    ``background=``, "lime" needs ``background=`` rows to learn its quartiles from).
    """
    if isinstance(model, (str, Path)):
        model = load(model)
    if not isinstance(model, Model):
        raise InputError("model must be an onnxai Model (onnxai.load(path)) or a path to a .onnx file")
    key = method.lower().replace("_", "-")
    if not model.input.is_image:
        key = TABLE_NAMES.get(key, key)
        obj = make_method(key, **params)
        if obj.inputs == "pictures":
            raise InputError(f"{method} explains pictures; for table rows use kernel-shap or lime")
        return obj.explain(model, image, target=target)
    return make_method(key, **params).explain(model, image, target=target, cropped=cropped)
