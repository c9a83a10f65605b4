"""The work on one batch of items, the same in the local runner and in every Ray actor.

    Job       what a run does, picklable (shipped to Ray actors once): the model file and its load
              options, the methods with their parameters and store keys, target, seed, the table's
              background (summarised once, on the driver)
    Worker    one loaded Model and the method objects; ``pictures(items, decoded)`` and
              ``table(ids, X, source)`` return store Rows, one per item x method x target, a failing
              item becoming a row with status "error" while the others go on

Pictures are batched through their first forward pass: every method's ``explain`` starts with one
pass on the unperturbed input (CAM / Grad-CAM also read their layer in it), and here that pass runs
once for the whole batch; a CAM or exact Grad-CAM then needs no other pass. Methods that sample get
a seed derived from (seed, item id) (sources.item_seed), so an item's map does not depend on the
batch it landed in, the worker that ran it, or the order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import OnnxaiError
from ..methods import takes
from .predict import Predict
from .predict import make as make_method
from .sources import PictureItem, item_seed
from .store import Rows, compact_map, overlay_name



@dataclass
class Job:
    model_path: str
    model_options: dict = field(default_factory=dict)     # onnxai.load keyword arguments
    methods: list = field(default_factory=list)           # [(name, params, store key)]
    target: object = None
    seed: int = 0
    background: dict | None = None                        # tables: {method: its background, prepared once}
    pictures: object = None                               # folder for PNG overlays, or None


class Worker:
    """One Model (one onnxruntime session) and the run's methods, built once."""

    def __init__(self, job: Job, threads: int | None = None, model=None):
        from ..model import load

        self.job = job
        opts = dict(job.model_options)
        if threads is not None:
            opts["threads"] = threads
        self.model = model if model is not None else load(job.model_path, **opts)
        self.methods = []
        for name, params, key in job.methods:
            p = dict(params)
            if name in (job.background or {}):
                p["background"] = job.background[name]
            self.methods.append((name, p, key, make_method(name, **p)))

    def warm(self) -> None:
        """Each method's ``prepare`` (e.g. the session that exposes a CAM's layer), so the first batch
        does not wait for it."""
        prepare_all([method for *_, method in self.methods], self.model)

    # ------------------------------------------------------------------ pictures
    def decode(self, item: PictureItem):
        """(x (1, ...), crop) or the exception that stopped it (kept, to become an error row)."""
        try:
            return self.model.prepare(item.path)
        except Exception as e:  # noqa: BLE001 - a bad item is data, not a crash
            return e

    def pictures(self, items: list[PictureItem], decoded=None) -> Rows:
        decoded = [self.decode(i) for i in items] if decoded is None else decoded
        return self.assemble(items, decoded, self.first(items, decoded))

    def first(self, items: list[PictureItem], decoded: list) -> list:
        """Stage 1, the batched forward passes: per method, (item positions it runs on, one first pass
        per position, seconds per item). Only this stage runs the model for CAM / exact Grad-CAM, so the
        local runner overlaps it with stage 2 of the previous batch."""
        stage: list = [None] * len(self.methods)
        probs: dict[int, np.ndarray] = {}  # position -> the model's probabilities from a pass already run
        order = sorted(range(len(self.methods)), key=lambda j: isinstance(self.methods[j][3], Predict))
        for j in order:  # predict last: it reuses the probabilities of another method's first pass
            name, params, key, method = self.methods[j]
            run = [i for i in range(len(items)) if _wants(items[i], name) and not isinstance(decoded[i], BaseException)]
            if not run:
                stage[j] = (run, [], 0.0)
                continue
            if isinstance(method, Predict) and all(i in probs for i in run):
                stage[j] = (run, [(probs[i], {}) for i in run], 0.0)
                continue
            t0 = time.perf_counter()
            passes = self._first_passes(method, [decoded[i][0] for i in run])
            stage[j] = (run, passes, (time.perf_counter() - t0) / len(run))
            probs.update((i, p[0]) for i, p in zip(run, passes) if not isinstance(p, BaseException))
        return stage

    def assemble(self, items: list[PictureItem], decoded: list, stage: list) -> Rows:
        """Stage 2: each item's explanations from its first pass (and whatever passes its method still
        needs), the error rows, the overlays; -> Rows in item order per method."""
        rows = Rows()
        for (name, params, key, method), (run, passes, share) in zip(self.methods, stage):
            for i in range(len(items)):
                if _wants(items[i], name) and isinstance(decoded[i], BaseException):
                    rows.add(items[i].item_id, items[i].path, name, key, None, seconds=0.0,
                             error=_message(decoded[i]))
            for j, i in enumerate(run):
                item, (x, crop) = items[i], decoded[i]
                seed = item_seed(self.job.seed, item.item_id) if "seed" in params or takes(type(method), "seed") else None
                t1 = time.perf_counter()
                try:
                    first = passes[j]
                    if isinstance(first, BaseException):
                        raise first
                    probs, extra = first
                    target = item.target if item.target is not None else self.job.target
                    if isinstance(method, Predict):  # no map to make: the prediction is the row
                        _add_predictions(rows, item.item_id, item.path, name, key, method.rows(self.model, probs, target),
                                         share + time.perf_counter() - t1)
                        continue
                    obj = make_method(name, **{**params, "seed": seed}) if seed is not None else method
                    targets, _ = obj.resolve(self.model, probs, extra, target)
                    expls = obj._explain(self.model, x, crop, probs, targets, **extra)
                except Exception as e:  # noqa: BLE001
                    rows.add(item.item_id, item.path, name, key, seed, seconds=share + time.perf_counter() - t1,
                             error=_message(e))
                    continue
                seconds = share + time.perf_counter() - t1
                method.finish(expls, crop, item.path, seconds)
                for e in expls:
                    if self.job.pictures is not None:
                        try:
                            _overlay(e, self.job.pictures, item.item_id, name)
                        except (OSError, OnnxaiError) as err:  # the row is still stored; it says why
                            e.extras["picture_error"] = _message(err)
                    stored, size, how = compact_map(e.map, e.raw_map, method.raw_upsample())
                    rows.add(item.item_id, item.path, name, key, seed, e.target, e.label, e.score, stored,
                             e.importance, e.stderr, e.extras, seconds, map_size=size, map_upsample=how)
        return rows

    def _first_passes(self, method, xs: list[np.ndarray]):
        """One (probs, extra) per input from the method's batched first pass. A batch that fails (a NaN
        score) is redone one input at a time, so only the bad input fails."""
        try:
            return method.first_passes(self.model, np.concatenate(xs))
        except OnnxaiError:
            out = []
            for x in xs:
                try:
                    out.extend(method.first_passes(self.model, x))
                except OnnxaiError as e:
                    out.append(e)
            return out

    # ------------------------------------------------------------------ tables
    def table(self, ids: list[str], X: np.ndarray, source, skip: dict | None = None) -> Rows:
        """skip: {method: item ids already stored} (those rows are not run again)."""
        rows = Rows()
        ok = np.isfinite(X).all(axis=1)
        for name, params, key, method in self.methods:
            done = (skip or {}).get(name, ())
            wanted = np.array([i not in done for i in ids], bool)
            for i in np.flatnonzero(~ok & wanted):
                rows.add(ids[i], source.describe(ids[i]), name, key, None,
                         error="the row has empty or NaN cells; fill them first")
            good = np.flatnonzero(ok & wanted)
            if not good.size:
                continue
            if isinstance(method, Predict):
                self._predict_rows(rows, ids, good, X, source, name, key, method)
                continue
            # kernel-shap: one coalition design for every row (shap's way), so the rows of a chunk go
            # together; a method that draws per row (lime-tabular) runs each row with its own seed
            per_row = name != "kernel-shap" and takes(type(method), "seed")
            groups = [[i] for i in good] if per_row else [list(good)]
            for g in groups:
                t0 = time.perf_counter()
                seed = item_seed(self.job.seed, ids[g[0]]) if per_row else params.get("seed", 0)
                try:
                    obj = make_method(name, **{**params, "seed": seed}) if per_row else method
                    e = obj.explain(self.model, X[g], target=self.job.target)
                except Exception as err:  # noqa: BLE001
                    for i in g:
                        rows.add(ids[i], source.describe(ids[i]), name, key, seed,
                                 seconds=(time.perf_counter() - t0) / len(g), error=_message(err))
                    continue
                seconds = (time.perf_counter() - t0) / len(g)
                for k, i in enumerate(g):
                    t = int(e.targets[k])
                    base = np.asarray(e.base(k))
                    extras = {"base_value": float(base[t]), "feature_names": e.feature_names,
                              "classes": e.class_names, "map": "values (features, classes)"}
                    rows.add(ids[i], source.describe(ids[i]), name, key, seed, t, e.class_names[t],
                             float(e.predictions[k, t]), e.values[k], e.values[k, :, t],
                             None if e.stderr is None else e.stderr[k, :, t], extras, seconds)
        return rows

    def _predict_rows(self, rows, ids, good, X, source, name, key, method) -> None:
        """predict on table rows: one pass for the chunk, a row per item (and target)."""
        t0 = time.perf_counter()
        try:
            probs = self.model.scores(X[good])
        except Exception as err:  # noqa: BLE001 - the whole chunk's pass failed: each row says why
            for i in good:
                rows.add(ids[i], source.describe(ids[i]), name, key, None, error=_message(err))
            return
        seconds = (time.perf_counter() - t0) / len(good)
        for k, i in enumerate(good):
            try:
                made = method.rows(self.model, probs[k], self.job.target)
            except Exception as err:  # noqa: BLE001 - e.g. an unknown target class
                rows.add(ids[i], source.describe(ids[i]), name, key, None, seconds=seconds, error=_message(err))
                continue
            _add_predictions(rows, ids[i], source.describe(ids[i]), name, key, made, seconds)


def prepare_all(methods, model) -> None:
    """Each method's ``prepare`` on ``model``; a failure is left for the first pass to report per item."""
    for method in methods:
        try:
            method.prepare(model)
        except Exception:  # noqa: BLE001 - reported by the first pass, as an error row
            pass


def _add_predictions(rows, item_id, source, name, key, made, seconds) -> None:
    """Predict.rows' (target, label, score, probabilities, extras) as store rows of one item."""
    for t, label, score, p, extras in made:
        rows.add(item_id, source, name, key, None, t, label, score, p, extras=extras, seconds=seconds)


def _wants(item: PictureItem, method: str) -> bool:
    """Does the item ask for this method (a list's ``methods`` column; None: every method)?"""
    return item.methods is None or method in item.methods


def _message(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if isinstance(e, OnnxaiError) else f"{type(e).__name__}: {text}"


def _overlay(e, folder, item_id: str, method: str):
    from pathlib import Path

    from .. import render

    render.save_png(render.explanation_panel(e), Path(folder) / overlay_name(item_id, method, e.target), force=True)
