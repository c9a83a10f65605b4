"""TabularExplanation: per-row, per-feature, per-class contributions and base values, and the files
they are saved to (CSV of the target class, JSON of everything, a bar chart and a waterfall per row).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..explanation import to_jsonable
from ..safe_io import check_destinations, csv_row, file_base, open_atomic, write_text
from .plots import bar_chart, waterfall


@dataclass
class TabularExplanation:
    """Contributions for several rows of a table, all classes.

    values: (r, M, C) per row, feature and class (Kernel SHAP: Shapley values; LIME: surrogate weights)
    base_values: (C,) or (r, C): E[f(background)] for SHAP (the expected value), the intercept for LIME
    predictions: (r, C) f(row); data: (r, M) the rows; rows: their indices in the table
    targets: (r,) the class each row's pictures show (the predicted class unless asked otherwise)
    stderr: (r, M, C) the standard error of each value (sampled methods), or None
    """

    values: np.ndarray
    base_values: np.ndarray
    predictions: np.ndarray
    data: np.ndarray
    feature_names: list
    class_names: list
    method: str
    rows: list
    targets: np.ndarray
    params: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    stderr: np.ndarray | None = None

    @property
    def expected_value(self) -> np.ndarray:
        return self.base_values

    def base(self, i: int) -> np.ndarray:
        b = np.asarray(self.base_values)
        return b if b.ndim == 1 else b[i]

    def records(self) -> list[dict]:
        """One record per (row, feature) for the target class: what the CSV holds."""
        out = []
        for i, r in enumerate(self.rows):
            t = int(self.targets[i])
            for j, name in enumerate(self.feature_names):
                out.append({"row": int(r), "class": self.class_names[t], "feature": name,
                            "value": float(self.data[i, j]), "contribution": float(self.values[i, j, t]),
                            "base_value": float(self.base(i)[t]), "prediction": float(self.predictions[i, t]),
                            **({} if self.stderr is None else {"stderr": float(self.stderr[i, j, t])})})
        return out

    def to_json(self) -> dict:
        return {
            "format": "onnxai.tabular/1", "method": self.method, "params": _jsonable(self.params),
            "feature_names": list(self.feature_names), "class_names": list(self.class_names),
            "class_order": "the model's classlabels (ZipMap / classifier node), else output columns",
            "rows": [int(r) for r in self.rows], "targets": [int(t) for t in self.targets],
            "base_values": np.asarray(self.base_values).tolist(), "predictions": self.predictions.tolist(),
            "values": self.values.tolist(),
            **({} if self.stderr is None else {"stderr": _nulls(self.stderr)}), "data": _nulls(self.data),
            "extras": _jsonable(self.extras), "timings": _jsonable(self.timings),
        }

    def paths(self, base, pictures: bool = True) -> list[Path]:
        """The files ``save(base)`` writes."""
        return output_paths(base, self.rows if pictures else [])

    def save(self, base, force: bool = True, pictures: bool = True) -> list[Path]:
        """Write BASE.csv (target-class contributions; text cells never read as formulas), BASE.json
        (everything, names as given) and, per row, BASE_row<i>_bar.png and BASE_row<i>_waterfall.png.
        Overwrites unless ``force=False``; every file goes through safe_io."""
        from ..render import save_png

        paths = self.paths(base, pictures)
        check_destinations(paths, force)
        recs = self.records()
        with open_atomic(paths[0], "w", force, newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(recs[0]) if recs else ["row"])
            w.writeheader()
            w.writerows(csv_row(r) for r in recs)
        write_text(paths[1], json.dumps(self.to_json(), indent=1), force)
        if pictures:
            for i, r in enumerate(self.rows):
                save_png(bar_chart(self, i), paths[2 + 2 * i], force)
                save_png(waterfall(self, i), paths[3 + 2 * i], force)
        return paths


def output_paths(base, rows) -> list[Path]:
    """BASE.csv, BASE.json and the two pictures of each row."""
    base = file_base(base, "out/rf_shap")
    out = [base.with_name(base.name + ".csv"), base.with_name(base.name + ".json")]
    for r in rows:
        out += [base.parent / f"{base.name}_row{r}_bar.png", base.parent / f"{base.name}_row{r}_waterfall.png"]
    return out


def _jsonable(v):
    return to_jsonable(v, max_array=None)  # tables keep every number


def _nulls(a) -> list:
    """Nested lists of a float array with NaN as None (JSON has no NaN: empty cells, errors not estimated)."""
    a = np.asarray(a, np.float64)
    return np.where(np.isnan(a), None, a).tolist()
