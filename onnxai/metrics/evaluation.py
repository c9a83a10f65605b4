"""Scores and whole evaluations: every registered metric of a map, gathered over methods and pictures.

``score_map`` scores one map with every metric of ``REGISTRY`` (one ``Sample``, so shared measurements
run once) into a ``Score``. ``evaluate`` explains pictures with methods, scores each map (plus a random
map as a baseline) and gathers the Scores into an ``Evaluation`` that prints as a table and saves as
CSV/JSON. The columns of all of these come from ``columns()``: the registered metrics in registration
order, then ``SECONDS``, how long the method took, which tables show but which is no faithfulness
metric (it is measured by ``evaluate``, not scored from the map).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..explanation import Explanation
from ..kernels._checks import check_number
from ..methods import make_method
from ..methods.fills import BLUR_SIGMA_MAX
from ..safe_io import check_destinations, csv_row, write_text
from .base import INSERTION_BLUR_SIGMA, REGISTRY, Column, Prepared, Sample, _target, prepare, random_map
from .curves import CurveMetric

RANDOM = "random"  # the name of the random-map baseline row


class Seconds(Column):
    """The time the method took to explain the picture: a column of every table, not a metric."""

    name, direction, digits = "seconds", "lower", 2
    report_heading = "s / picture"
    text_heading = "s/image"
    description = "seconds the method took to explain one picture (0 for the random map); not a faithfulness metric"

    def value(self, score) -> float:
        return score.seconds


SECONDS = Seconds()


def columns() -> list[Column]:
    """What a Score row holds after its identity: every registered metric, then SECONDS."""
    return [*REGISTRY.values(), SECONDS]


def curve_metrics() -> list[CurveMetric]:
    return [m for m in REGISTRY.values() if isinstance(m, CurveMetric)]


@dataclass
class Score:
    """Every metric of one map of one picture; ``score.deletion``, ``score.ad``... read ``values``."""

    method: str
    image: str
    target: int
    label: str
    values: dict  # {metric name: value} in registry order
    seconds: float = 0.0  # time the method took to explain (0 for the random map)
    curves: dict = field(default_factory=dict)  # {curve metric name: Curve}

    def __getattr__(self, name):  # only called when normal lookup fails: metric values and NAME_curve
        d = self.__dict__
        if name in d.get("values", {}):
            return d["values"][name]
        if name.endswith("_curve") and isinstance(REGISTRY.get(name[:-6]), CurveMetric):
            return d.get("curves", {}).get(name[:-6])
        raise AttributeError(f"{type(self).__name__} has no {name!r}; its metrics are {', '.join(d.get('values', {}))}")

    def row(self) -> dict:
        return {"method": self.method, "image": self.image, "target": self.target, "label": self.label,
                **{c.name: c.value(self) for c in columns()}}


def score_map(model, image, map_, target=None, method: str = "", seconds: float = 0.0, step=None,
              substrate="zero", blur_sigma: float = INSERTION_BLUR_SIGMA, progress=False) -> Score:
    """Every registered metric of one map (deletion and insertion AUCs, AD/IC and their top-50% variants...)."""
    p = prepare(model, image)
    target = _target(model, p.probs, target)
    sample = Sample(model, p, map_, target, step=step, substrate=substrate, blur_sigma=blur_sigma,
                    progress=progress)
    values = {name: m.score(sample) for name, m in REGISTRY.items()}
    name = str(image) if isinstance(image, (str, Path)) else "<array>"
    return Score(method, name, target, model.label(target), values, float(seconds),
                 {m.name: m.curve(sample) for m in curve_metrics()})


def score_explanation(model, expl, image=None, **kw) -> Score:
    """``score_map`` for an Explanation (its picture, map, class and time)."""
    if image is None:
        if expl.image is None:
            raise InputError("the explanation carries no picture; pass image=")
        image = Prepared.from_crop(model, expl.image)
    s = score_map(model, image, expl.map, expl.target, method=expl.method,
                  seconds=float(expl.timings.get("total", 0.0)), **kw)
    if expl.source:
        s.image = expl.source
    return s


@dataclass
class Evaluation:
    """All scores of an evaluation; ``summary`` gives mean and std per method over the pictures."""

    scores: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    explanations: list = field(default_factory=list)  # the maps scored (Explanation objects, random included)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(s.method for s in self.scores))

    def summary(self) -> dict:
        """{method: {column: (mean, std), "n": count}} in the order the methods ran."""
        out = {}
        for m in self.methods:
            rows = [s for s in self.scores if s.method == m]
            out[m] = {"n": len(rows)}
            for c in columns():
                v = np.array([c.value(s) for s in rows], np.float64)
                out[m][c.name] = (float(v.mean()), float(v.std()))
        return out

    def table(self) -> str:
        """The summary as a fixed-width text table (mean ± std over pictures)."""
        cols = columns()
        heads = ["method", "n"] + [c.text_heading for c in cols]
        rows = []
        for m, d in self.summary().items():
            rows.append([m, str(d["n"])] + [f"{d[c.name][0]:.{c.table_digits}f} ± {d[c.name][1]:.{c.table_digits}f}"
                                            for c in cols])
        widths = [max(len(r[i]) for r in rows + [heads]) for i in range(len(heads))]
        lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(heads, widths)))]
        lines.append("  ".join("-" * w for w in widths))
        for r in rows:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        return "\n".join(lines)

    def to_csv(self) -> str:
        buf = io.StringIO()
        names = ["method", "image", "target", "label", *(c.name for c in columns())]
        wr = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
        wr.writeheader()
        for s in self.scores:
            wr.writerow(csv_row(s.row()))  # labels and file names are text from elsewhere: no formulas
        return buf.getvalue()

    def to_json(self) -> dict:
        curved = [m.name for m in curve_metrics()]
        return {
            "format": "onnxai.evaluation/1",
            "params": self.params,
            "better": {c.name: c.direction for c in columns()},
            "summary": {m: {k: (v if k == "n" else {"mean": v[0], "std": v[1]}) for k, v in d.items()}
                        for m, d in self.summary().items()},
            "scores": [{**s.row(), **{f"{k}_curve": s.curves[k].to_dict() if s.curves.get(k) else None
                                      for k in curved}}
                       for s in self.scores],
        }

    def mean_curves(self, kind: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{method: (fractions, mean scores)} over the pictures (curves resampled onto a common grid)."""
        grid = np.linspace(0, 1, 101)
        out = {}
        for m in self.methods:
            cs = [s.curves.get(kind) for s in self.scores if s.method == m]
            cs = [c for c in cs if c is not None]
            if cs:
                out[m] = (grid, np.mean([np.interp(grid, c.fractions, c.scores) for c in cs], axis=0))
        return out

    @staticmethod
    def paths(base) -> list[Path]:
        """The files ``save(base)`` writes: BASE.csv and BASE.json."""
        base = Path(base)
        return [base.with_name(base.name + ".csv"), base.with_name(base.name + ".json")]

    def save(self, base, force: bool = True) -> list[Path]:
        """Write BASE.csv and BASE.json through safe_io (overwriting unless ``force=False``); returns the paths."""
        paths = self.paths(base)
        check_destinations(paths, force)
        write_text(paths[0], self.to_csv(), force)
        write_text(paths[1], json.dumps(self.to_json(), indent=1), force)
        return paths


def _named_methods(methods) -> list[tuple[str, object]]:
    """[(name, Method)] from {name: Method} or a list of Method objects / registry names."""
    if isinstance(methods, dict):
        return list(methods.items())
    named = []
    for m in methods:
        obj = make_method(m) if isinstance(m, str) else m
        named.append((m if isinstance(m, str) else getattr(obj, "name", type(obj).__name__), obj))
    return named


def evaluate(model, images, methods, target="top1", step: int | None = None, substrate="zero",
             blur_sigma: float = INSERTION_BLUR_SIGMA, seed: int = 0, random_baseline: bool = True, on_score=None,
             progress: bool | None = False) -> Evaluation:
    """Explain every picture with every method and score each map; a random map is scored too.

    methods: {name: Method} or a list of Method objects / registry names (built with defaults).
    target: the class explained on each picture ("top1", an index or a label; one class per picture).
    on_score: called with each Score as it is ready (for printing progress).
    """
    check_number(blur_sigma, "blur_sigma", 0, BLUR_SIGMA_MAX)  # before any picture is explained
    named = _named_methods(methods)
    ev = Evaluation(params={"target": target, "step": step, "substrate": substrate, "blur_sigma": blur_sigma,
                            "seed": seed, "methods": [n for n, _ in named]})
    for k, image in enumerate(images):
        p = prepare(model, image)
        t = _target(model, p.probs, target)
        name = str(image) if isinstance(image, (str, Path)) else f"<array {k}>"
        jobs = []
        for mname, method in named:
            t0 = time.perf_counter()
            e = method.explain(model, image, target=t)
            e = e[0] if isinstance(e, list) else e
            e.source = name
            jobs.append((mname, e.map, float(e.timings.get("total", time.perf_counter() - t0))))
            ev.explanations.append(e)
        if random_baseline:
            jobs.append((RANDOM, random_map(p.crop.shape[:2], seed + k), 0.0))
            ev.explanations.append(Explanation(map=jobs[-1][1], target=t, label=model.label(t), score=float(p.probs[t]),
                                               method=RANDOM, params={"seed": seed + k}, image=p.crop, source=name))
        for mname, map_, secs in jobs:
            s = score_map(model, p, map_, t, method=mname, seconds=secs, step=step, substrate=substrate,
                          blur_sigma=blur_sigma, progress=progress)
            s.image = name
            ev.scores.append(s)
            if on_score is not None:
                on_score(s)
    return ev
