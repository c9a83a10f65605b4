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


def explain_dataset(model, source, methods=("grad-cam",), out="results", engine: str = "local", target=None,
                    background=None, force: bool = False, strict: bool = False, progress: bool = True,
                    pictures: bool = False, model_options: dict | None = None, method_params: dict | None = None,
                    workers: int = 2, threads_per_worker: int = 1, address: str | None = None,
                    batch_items: int | None = None, retry_errors: bool = False, **params):
    """Explain every item of a data set with ``methods`` into a Parquet store under ``out``.

    source: a folder of pictures (recursive), a .txt/.csv list of picture paths (``path``, optional
    ``target`` and ``id`` columns), or for a table model a .parquet/.csv table (plus ``background``).
    params: method parameters (``num_samples=250``, ``seed=0``, ...), each given to every method that
    takes it; ``method_params={"lime": {...}}`` sets one method's. Items already in the store for the
    same method + parameters + model are skipped (``force=True`` starts over; ``retry_errors=True`` runs
    the items stored as errors again, replacing their error rows). engine: "local" or "ray"
    (``workers`` actors of ``threads_per_worker`` CPUs; ``address`` of a running cluster, or a local one).
    Returns a dataset.Summary; ``strict=True`` raises when an item failed.
    """
    from . import dataset
    from .errors import OnnxaiError

    plan = dataset.make_plan(model, source, methods, out, target=target, params=params,
                             method_params=method_params, background=background, force=force,
                             pictures=pictures, model_options=model_options, warm=engine == "local",
                             retry_errors=retry_errors)
    if engine == "ray":
        summary = dataset.run(plan, "ray", progress=progress, workers=workers, threads=threads_per_worker,
                              address=address, batch_items=batch_items)
    else:
        summary = dataset.run(plan, engine, progress=progress, batch_items=batch_items)
    if strict and summary.failed:
        raise OnnxaiError(f"{summary.failed} item(s) failed (status 'error' in the store); {summary.line()}")
    return summary
