"""The one-call entry point: ``onnxai.explain(model, image, method=..., target=..., **params)``."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .methods import make_method
from .model import Model, load


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
    if not model.input.is_image and method.lower() == "lime":
        from .methods.lime_tabular import LimeTabular

        training = params.pop("background", None)
        training = params.pop("training", training)
        if training is None:
            raise InputError("LIME for a table model needs training rows to learn the quartiles from: "
                             "pass background=... (an array of rows)")
        return LimeTabular(training, **params).explain(model, image, target=target)
    return make_method(method, **params).explain(model, image, target=target, cropped=cropped)
