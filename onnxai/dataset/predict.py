"""``predict``: the model's prediction for every item, without a map (``explain-dataset --methods
predict``, alone or beside the explainers: an audit's first column).

One row per item and target (the predicted class unless a target is given): ``target``, ``label``,
``score`` = its probability, ``map`` = the whole probability vector (classes,), ``extras`` = the top
classes as [index, label, probability]. Pictures go through the batched first pass like CAM's, table
rows in one pass per chunk. It is the data-set runner's own: a single-picture ``onnxai explain``
has ``onnxai predict`` for this.
"""

from __future__ import annotations

import numpy as np

from ..methods import METHODS, make_method
from ..methods.base import resolve_targets
from ..methods.budget import check_count


class Predict:
    name = "predict"
    inputs = "both"

    def __init__(self, top: int = 5):
        self.top = check_count(top, "top")

    def params(self) -> dict:
        return {"top": self.top}

    def prepare(self, model) -> None:
        """Nothing to build: the model's own session serves."""

    def first_passes(self, model, batch: np.ndarray) -> list[tuple[np.ndarray, dict]]:
        return [(p, {}) for p in model.scores(batch)]

    def rows(self, model, probs: np.ndarray, target) -> list[tuple]:
        """[(target, label, score, probabilities, extras)] for the targets asked (None: the top class)."""
        probs = np.asarray(probs, np.float32)
        order = np.argsort(-probs, kind="stable")[:self.top]
        top = [[int(i), model.label(int(i)), float(probs[i])] for i in order]
        targets, _ = resolve_targets(model, probs, target)
        return [(t, model.label(t), float(probs[t]), probs, {"top": top}) for t in targets]


DATASET_METHODS = {**METHODS, "predict": Predict}


def make(name: str, **params):
    """A method object for the data-set runner: the registry's, or ``predict``."""
    if name == "predict":
        try:
            return Predict(**params)
        except TypeError as e:
            from ..errors import InputError

            raise InputError(f"predict: {e}") from None
    return make_method(name, **params)
