"""Tables: tabular ONNX models, their data, and what the tabular explainers share.

    read_table           a CSV -> (X (n, M) float64, feature names), with errors that say what to fix
    parse_rows           "0,5,9" / "3-7" -> row indices, checked against the table
    summarise            a background data set: k-means centres weighted by cluster size (like shap.kmeans,
                         values snapped to the nearest real value of each column) or a random sample
    TabularExplanation   per-row, per-feature, per-class contributions + base values; CSV/JSON/PNG output
    LimeTabular          LIME for tables as lime's LimeTabularExplainer does it by default: quartile
                         discretisation, sampling bins by their training frequencies (or around the
                         instance), kernel width sqrt(M) * 0.75, ridge surrogate
    bar_chart, waterfall pictures of one row's contributions (Pillow, no matplotlib)

Class order rule: column c of every probability array onnxai returns for a tabular classifier is the
c-th class of the ZipMap / classifier node's ``classlabels_int64s`` or ``classlabels_strings`` (the
order of scikit-learn's ``classes_``); ``Model.labels`` holds those names.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .explanation import to_jsonable
from .errors import InputError

# --------------------------------------------------------------------------- data


def _float(cell: str):
    try:
        return float(cell)
    except ValueError:
        return None


def read_table(path, feature_names=None, expect: int | None = None) -> tuple[np.ndarray, list[str]]:
    """A CSV file -> (X (n, M) float64, feature names). A first row with non-numbers is the header.

    expect: the number of columns the model takes (an error says so when the file differs).
    feature_names: a list or "a,b,c" (overrides the header); empty cells are NaN.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"table file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{path} is empty; a table needs one row per example and one column per feature")
    header = None
    if any(c.strip() and _float(c) is None for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise InputError(f"{path} has a header but no data rows")
    width = len(header) if header is not None else len(rows[0])
    X = np.empty((len(rows), width))
    for i, r in enumerate(rows):
        line = i + 1 + (header is not None)
        if len(r) != width:
            raise InputError(f"{path}, line {line}: {len(r)} columns where the table has {width}; "
                             "every row needs the same number of cells")
        for j, c in enumerate(r):
            c = c.strip()
            if c == "" or c.lower() in ("nan", "na"):
                X[i, j] = np.nan
                continue
            v = _float(c)
            if v is None:
                name = header[j] if header else f"column {j}"
                raise InputError(f"{path}, line {line}, {name}: {c!r} is not a number; onnxai explains "
                                 "numeric tables (encode categories as numbers)")
            X[i, j] = v
    if expect is not None and width != expect:
        raise InputError(f"{path} has {width} columns but the model takes {expect} features per row; "
                         "drop label/index columns or give the table the model was trained on")
    names = _names(feature_names, width) or header or [f"x{j}" for j in range(width)]
    return X, names


def _names(feature_names, width: int):
    if feature_names is None:
        return None
    if isinstance(feature_names, (str, Path)) and Path(str(feature_names)).is_file():
        text = Path(str(feature_names)).read_text(encoding="utf-8")
        feature_names = [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]
    elif isinstance(feature_names, str):
        feature_names = [t.strip() for t in feature_names.split(",")]
    names = [str(n) for n in feature_names]
    if len(names) != width:
        raise InputError(f"{len(names)} feature names were given for {width} columns; give one name per column")
    return names


def parse_rows(spec, n: int) -> list[int]:
    """"0,5,9", "3-7", a list of ints or None (all rows) -> indices into a table of n rows."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "all")):
        return list(range(n))
    items = spec if isinstance(spec, (list, tuple, np.ndarray)) else str(spec).split(",")
    out = []
    for it in items:
        s = str(it).strip()
        try:
            if "-" in s[1:]:
                a, b = s.split("-", 1) if not s.startswith("-") else (s, None)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(s))
        except (TypeError, ValueError):
            raise InputError(f"row {s!r} is not a row number; give --rows like 0,5,9 or 3-7") from None
    bad = [r for r in out if not 0 <= r < n]
    if bad:
        raise InputError(f"row {bad[0]} does not exist: the table has {n} rows (0..{n - 1})")
    return out


@dataclass
class Background:
    """A background data set: data (b, M) float64 rows and weights (b,) summing to 1."""

    data: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        self.data = np.atleast_2d(np.asarray(self.data, np.float64))
        self.weights = np.asarray(self.weights, np.float64)
        if self.weights.shape != (self.data.shape[0],) or not self.weights.sum() > 0:
            raise InputError("background weights need one non-negative number per row with a positive sum")
        self.weights = self.weights / self.weights.sum()


def summarise(X, k: int = 10, method: str = "kmeans", seed: int = 0) -> Background:
    """Background rows from training data X (n, M).

    "kmeans": k centres by scikit-learn's KMeans (random_state=seed), each value snapped to the nearest
    value of that column in X, weighted by cluster sizes (shap.kmeans with round_values=True);
    "sample": k rows drawn without replacement, equal weights; "all": X itself.
    """
    if isinstance(X, Background):
        return X
    X = np.atleast_2d(np.asarray(X, np.float64))
    if method == "all" or X.shape[0] <= k:
        return Background(X, np.ones(X.shape[0]))
    if method == "sample":
        idx = np.sort(np.random.default_rng(seed).choice(X.shape[0], int(k), replace=False))
        return Background(X[idx], np.ones(len(idx)))
    if method != "kmeans":
        raise InputError(f"unknown background summary {method!r}; use 'kmeans', 'sample' or 'all'")
    from sklearn.cluster import KMeans

    Xf = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    km = KMeans(n_clusters=int(k), random_state=seed, n_init=10).fit(Xf)
    centres = km.cluster_centers_.copy()
    for j in range(X.shape[1]):
        col = Xf[:, j]
        centres[:, j] = col[np.abs(col[None, :] - centres[:, j:j + 1]).argmin(axis=1)]
    return Background(centres, np.bincount(km.labels_, minlength=int(k)).astype(np.float64))


# --------------------------------------------------------------------------- results


@dataclass
class TabularExplanation:
    """Contributions for several rows of a table, all classes.

    values: (r, M, C) per row, feature and class (Kernel SHAP: Shapley values; LIME: surrogate weights)
    base_values: (C,) or (r, C): E[f(background)] for SHAP (the expected value), the intercept for LIME
    predictions: (r, C) f(row); data: (r, M) the rows; rows: their indices in the table
    targets: (r,) the class each row's pictures show (the predicted class unless asked otherwise)
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
                            "base_value": float(self.base(i)[t]), "prediction": float(self.predictions[i, t])})
        return out

    def to_json(self) -> dict:
        return {
            "format": "onnxai.tabular/1", "method": self.method, "params": _jsonable(self.params),
            "feature_names": list(self.feature_names), "class_names": list(self.class_names),
            "class_order": "the model's classlabels (ZipMap / classifier node), else output columns",
            "rows": [int(r) for r in self.rows], "targets": [int(t) for t in self.targets],
            "base_values": np.asarray(self.base_values).tolist(), "predictions": self.predictions.tolist(),
            "values": self.values.tolist(), "data": np.where(np.isnan(self.data), None, self.data).tolist(),
            "extras": _jsonable(self.extras), "timings": _jsonable(self.timings),
        }

    def paths(self, base, pictures: bool = True) -> list[Path]:
        """The files ``save(base)`` writes."""
        return output_paths(base, self.rows if pictures else [])

    def save(self, base, force: bool = False, pictures: bool = True) -> list[Path]:
        """Write BASE.csv (target-class contributions), BASE.json (everything) and, per row,
        BASE_row<i>_bar.png and BASE_row<i>_waterfall.png. Refuses to overwrite without force."""
        base = Path(base)
        paths = self.paths(base, pictures)
        if not force:
            for p in paths:
                if p.exists():
                    raise InputError(f"{p} exists; pass force=True (--force) to overwrite it")
        base.parent.mkdir(parents=True, exist_ok=True)
        recs = self.records()
        with open(paths[0], "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(recs[0]) if recs else ["row"])
            w.writeheader()
            w.writerows(recs)
        paths[1].write_text(json.dumps(self.to_json(), indent=1))
        if pictures:
            for i, r in enumerate(self.rows):
                bar_chart(self, i).save(base.parent / f"{base.name}_row{r}_bar.png")
                waterfall(self, i).save(base.parent / f"{base.name}_row{r}_waterfall.png")
        return paths


def output_paths(base, rows) -> list[Path]:
    """BASE.csv, BASE.json and the two pictures of each row."""
    base = Path(base)
    out = [base.with_suffix(".csv"), base.with_suffix(".json")]
    for r in rows:
        out += [base.parent / f"{base.name}_row{r}_bar.png", base.parent / f"{base.name}_row{r}_waterfall.png"]
    return out


def _jsonable(v):
    return to_jsonable(v, max_array=None)  # tables keep every number


# --------------------------------------------------------------------------- pictures

_RED, _BLUE, _GREY = (200, 40, 50), (40, 90, 200), (120, 120, 120)


def _top(expl, i, k):
    t = int(expl.targets[i])
    v = expl.values[i, :, t]
    order = np.argsort(-np.abs(v), kind="stable")
    return t, v, order[:k], order[k:]


def _label(expl, i, j):
    x = expl.data[i, j]
    return f"{expl.feature_names[j]} = {x:.4g}"


def bar_chart(expl: TabularExplanation, i: int = 0, k: int = 10, width: int = 640):
    """Horizontal bars of the k largest |contributions| of row i for its target class (red = for)."""
    from PIL import Image, ImageDraw

    from .render import _font

    t, v, top, _ = _top(expl, i, k)
    font = _font(12)
    rowh, left, pad = 22, 230, 10
    h = 40 + rowh * len(top) + 20
    img = Image.new("RGB", (width, h), "white")
    d = ImageDraw.Draw(img)
    d.text((pad, 8), f"{expl.method}: row {expl.rows[i]}, class {expl.class_names[t]}", fill="black", font=font)
    span = float(np.abs(v[top]).max()) if len(top) else 1.0
    span = span or 1.0
    mid = left + (width - left - pad) // 2
    half = (width - left - pad) // 2 - 50
    d.line([(mid, 34), (mid, h - 14)], fill=_GREY)
    for r, j in enumerate(top):
        y = 36 + r * rowh
        d.text((pad, y + 3), _label(expl, i, j)[:34], fill="black", font=font)
        L = int(round(abs(v[j]) / span * half))
        x0, x1 = (mid, mid + L) if v[j] >= 0 else (mid - L, mid)
        d.rectangle([x0, y + 2, max(x1, x0 + 1), y + rowh - 4], fill=_RED if v[j] >= 0 else _BLUE)
        txt = f"{v[j]:+.4g}"
        tx = x1 + 4 if v[j] >= 0 else max(left, x0 - 6 * len(txt) - 4)
        d.text((tx, y + 3), txt, fill="black", font=font)
    return img


def waterfall(expl: TabularExplanation, i: int = 0, k: int = 10, width: int = 640):
    """Base value -> prediction, one step per feature (k largest, the rest summed), for row i."""
    from PIL import Image, ImageDraw

    from .render import _font

    t, v, top, rest = _top(expl, i, k)
    base = float(expl.base(i)[t])
    steps = [(_label(expl, i, j)[:34], float(v[j])) for j in top]
    if len(rest):
        steps.append((f"{len(rest)} other features", float(v[rest].sum())))
    font = _font(12)
    rowh, left, pad = 22, 230, 10
    h = 60 + rowh * (len(steps) + 1) + 20
    img = Image.new("RGB", (width, h), "white")
    d = ImageDraw.Draw(img)
    pred = base + sum(s for _, s in steps)
    d.text((pad, 8), f"{expl.method}: row {expl.rows[i]}, class {expl.class_names[t]}: "
                     f"base {base:.4g} -> {pred:.4g}", fill="black", font=font)
    cum = np.cumsum([base] + [s for _, s in steps])
    lo, hi = float(min(cum.min(), base)), float(max(cum.max(), base))
    if hi - lo < 1e-12:
        hi = lo + 1.0
    x_of = lambda val: int(left + (val - lo) / (hi - lo) * (width - left - pad - 60))  # noqa: E731
    y = 36
    d.text((pad, y + 3), "base value E[f(x)]", fill="black", font=font)
    d.line([(x_of(base), y), (x_of(base), h - 30)], fill=_GREY)
    d.text((x_of(base) + 3, y + 3), f"{base:.4g}", fill="black", font=font)
    cur = base
    for r, (name, s) in enumerate(steps):
        y = 36 + (r + 1) * rowh
        d.text((pad, y + 3), name, fill="black", font=font)
        a, b = sorted((x_of(cur), x_of(cur + s)))
        d.rectangle([a, y + 2, max(b, a + 1), y + rowh - 4], fill=_RED if s >= 0 else _BLUE)
        d.text((b + 4, y + 3), f"{s:+.3g}", fill="black", font=font)
        cur += s
    y = 36 + (len(steps) + 1) * rowh
    d.text((pad, y + 3), "prediction f(x)", fill="black", font=font)
    d.line([(x_of(cur), 36), (x_of(cur), y + rowh)], fill="black")
    d.text((x_of(cur) + 3, y + 3), f"{cur:.4g}", fill="black", font=font)
    return img


# --------------------------------------------------------------------------- explaining helpers


def table_rows(model, X, feature_names=None) -> tuple[np.ndarray, list[str]]:
    """Rows to explain as (r, M) float64 checked against the model's number of columns."""
    if isinstance(X, (str, Path)):
        X, names = read_table(X, feature_names, expect=model_width(model))
        return X, names
    X = np.asarray(X, np.float64)
    if X.ndim == 1:
        X = X[None]
    if X.ndim != 2:
        raise InputError(f"table rows must be (rows, features); got shape {X.shape}")
    M = model_width(model)
    if M is not None and X.shape[1] != M:
        raise InputError(f"the rows have {X.shape[1]} columns but the model takes {M} features per row")
    names = _names(feature_names, X.shape[1]) or [f"x{j}" for j in range(X.shape[1])]
    return X, names


def model_width(model) -> int | None:
    shape = model.input.shape
    if len(shape) == 1:
        return 1
    if len(shape) != 2:
        raise InputError(f"a tabular model takes (rows, features); this one takes {model.input.describe()}")
    return shape[1]


def class_names(model) -> list[str]:
    return [model.label(c) for c in range(model.num_classes)]


def resolve_row_targets(model, preds: np.ndarray, target) -> np.ndarray:
    """One class per row: the predicted one (None/"top1"), or a class index / label for every row."""
    if target is None or (isinstance(target, str) and target.lower() == "top1"):
        return np.argmax(preds, axis=1)
    return np.full(preds.shape[0], model.class_index(target), np.int64)


def score_rows(model, rows: np.ndarray, kind: str = "probabilities", chunk: int = 8192) -> np.ndarray:
    """Model scores for many table rows in large chunks (tabular models are cheap per row)."""
    rows = np.ascontiguousarray(rows, dtype=model.input.dtype)
    out = [model.run_batch(rows[i:i + chunk], kind) for i in range(0, rows.shape[0], chunk)]
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


# --------------------------------------------------------------------------- LIME for tables


class LimeTabular:
    """LIME for table rows, following lime's LimeTabularExplainer defaults.

    training: the data set to learn the quartiles and the scale from (or a Background);
    num_samples: perturbed rows per explained row (lime: 5000); discretize: True = quartiles;
    sample_around_instance: False samples bins by their frequency in the training data (lime's default);
    kernel_width: None = sqrt(M) * 0.75; alpha: ridge penalty (lime: Ridge(alpha=1)).
    values[r, j, c] are the ridge weights on the binary "same bin as the row" features.
    """

    name = "lime-tabular"

    def __init__(self, training, num_samples: int = 5000, discretize: bool = True,
                 sample_around_instance: bool = False, kernel_width: float | None = None, alpha: float = 1.0,
                 seed: int = 0, feature_names=None):
        T = training.data if isinstance(training, Background) else np.asarray(training, np.float64)
        if T.ndim != 2 or T.shape[0] < 2:
            raise InputError("LIME for tables needs training data: at least 2 rows of the model's features")
        self.training = T
        self.num_samples = int(num_samples)
        self.discretize = bool(discretize)
        self.sample_around_instance = bool(sample_around_instance)
        self.kernel_width = kernel_width
        self.alpha = float(alpha)
        self.seed = int(seed)
        self.feature_names = feature_names
        M = T.shape[1]
        self.mean = np.nanmean(T, axis=0)
        self.scale = np.nanstd(T, axis=0)
        self.scale[self.scale == 0] = 1.0
        if self.discretize:
            self.bounds = [np.unique(np.nanpercentile(T[:, j], [25, 50, 75])) for j in range(M)]
            D = self._bins(T)
            self.freqs = [np.bincount(D[:, j], minlength=len(self.bounds[j]) + 1) / T.shape[0] for j in range(M)]
            self.bin_stats = []
            for j in range(M):
                stats = []
                lo_all, hi_all = np.nanmin(T[:, j]), np.nanmax(T[:, j])
                edges = np.r_[lo_all, self.bounds[j], hi_all]
                for b in range(len(self.bounds[j]) + 1):
                    sel = T[D[:, j] == b, j]
                    mu = float(sel.mean()) if sel.size else float(edges[b])
                    sd = float(sel.std()) if sel.size else 0.0
                    stats.append((mu, sd, float(edges[b]), float(edges[b + 1])))
                self.bin_stats.append(stats)

    def params(self) -> dict:
        return {"num_samples": self.num_samples, "discretize": self.discretize,
                "sample_around_instance": self.sample_around_instance, "kernel_width": self.kernel_width,
                "alpha": self.alpha, "seed": self.seed}

    def _bins(self, X):
        return np.stack([np.searchsorted(self.bounds[j], X[:, j], side="left") for j in range(X.shape[1])], axis=1)

    def _undiscretize(self, D, rng):
        from scipy.stats import truncnorm

        out = np.empty(D.shape)
        for j in range(D.shape[1]):
            for b, (mu, sd, lo, hi) in enumerate(self.bin_stats[j]):
                sel = D[:, j] == b
                m = int(sel.sum())
                if not m:
                    continue
                if sd <= 0:
                    out[sel, j] = mu
                    continue
                a, bb = (lo - mu) / sd, (hi - mu) / sd
                out[sel, j] = truncnorm.rvs(a, bb, loc=mu, scale=sd, size=m, random_state=rng)
        return out

    def samples(self, row: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        """-> (binary/scaled representation (n, M) for the surrogate, rows in data space (n, M))."""
        n, M = self.num_samples, row.shape[0]
        if self.discretize:
            first = self._bins(row[None])[0]
            D = np.empty((n, M), np.int64)
            for j in range(M):
                p = self.freqs[j]
                D[:, j] = rng.choice(len(p), size=n, p=p)
            binary = (D == first[None]).astype(np.float64)
            binary[0] = 1
            inverse = self._undiscretize(D, rng)
            inverse[0] = row
            return binary, inverse
        Z = rng.standard_normal((n, M))
        inverse = Z * self.scale + (row if self.sample_around_instance else self.mean)
        inverse[0] = row
        return (inverse - self.mean) / self.scale, inverse

    def explain(self, model, X, target=None, feature_names=None) -> TabularExplanation:
        import time

        from . import kernels

        t0 = time.perf_counter()
        X, names = table_rows(model, X, feature_names or self.feature_names)
        M = X.shape[1]
        width = self.kernel_width if self.kernel_width is not None else np.sqrt(M) * 0.75
        rng = np.random.default_rng(self.seed)
        preds = score_rows(model, X).astype(np.float64)
        C = preds.shape[1]
        values = np.zeros((X.shape[0], M, C))
        intercepts = np.zeros((X.shape[0], C))
        r2 = np.zeros((X.shape[0], C))
        forward = 0.0
        for i, row in enumerate(X):
            rep, inverse = self.samples(row, rng)
            tf = time.perf_counter()
            y = score_rows(model, inverse).astype(np.float64)
            forward += time.perf_counter() - tf
            # lime sets mean 0 / scale 1 for discretised (categorical) columns: distances on the binary rows
            d = np.sqrt(((rep - rep[0]) ** 2).sum(axis=1))
            w = np.sqrt(np.exp(-(d ** 2) / width ** 2))
            for c in range(C):
                coef, icpt = kernels.weighted_ridge(rep, y[:, c], w, alpha=self.alpha)
                values[i, :, c] = coef
                intercepts[i, c] = icpt
                r2[i, c] = kernels.weighted_r2(rep, y[:, c], w, coef, icpt)
        targets = resolve_row_targets(model, preds, target)
        return TabularExplanation(values=values, base_values=intercepts, predictions=preds, data=X,
                                  feature_names=names, class_names=class_names(model), method="lime",
                                  rows=list(range(X.shape[0])), targets=targets, params=self.params(),
                                  extras={"r2": r2.tolist(), "kernel_width": float(width)},
                                  timings={"total": time.perf_counter() - t0, "forward": forward})


# --------------------------------------------------------------------------- the CLI's tabular path


_PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def explain_csv(model, tables, methods, opts: dict, target, out: Path, force: bool) -> list[str]:
    """``onnxai explain MODEL data.csv --rows ... --method kernel-shap|lime --background train.csv``.

    Writes OUT/STEM_METHOD.csv (one line per row and feature: the target class's contribution),
    .json (every class, base values, predictions) and per row _bar.png and _waterfall.png. Checks every
    file first and writes nothing when one exists, unless force. Returns lines to print.
    """
    from .methods.kernel_shap import KernelSHAP

    unknown = [m for m in methods if m not in ("kernel-shap", "lime")]
    if unknown:
        raise InputError(f"method {unknown[0]!r} explains pictures; for tables use --method kernel-shap or lime")
    M = model_width(model)
    pictures = [str(t) for t in tables if Path(t).suffix.lower() in _PICTURE_SUFFIXES]
    if pictures:
        raise InputError(f"{pictures[0]} is a picture, but this model takes table rows ({model.input.describe()}); "
                         "give a CSV file of rows")
    if opts.get("background") is None:
        raise InputError("explaining a table needs --background train.csv (rows like the model's training data)")
    bg, _ = read_table(opts["background"], expect=M)
    bg = bg[np.isfinite(bg).all(axis=1)]
    if bg.shape[0] == 0:
        raise InputError(f"{opts['background']} has no complete rows (every row has an empty or NaN cell)")
    seed = opts.get("seed") or 0
    jobs = []
    for table in tables:
        X, names = read_table(table, opts.get("feature_names"), expect=M)
        rows = parse_rows(opts.get("rows"), X.shape[0])
        for m in methods:
            base = out / f"{Path(table).stem}_{m}"
            jobs.append((table, X[rows], names, rows, m, base))
    if not force:
        for _, _, _, rows, _, base in jobs:
            for p in output_paths(base, rows):
                if p.exists():
                    raise InputError(f"{p} exists; pass --force to overwrite, or choose another --out")
    lines = []
    for table, X, names, rows, m, base in jobs:
        if m == "kernel-shap":
            method = KernelSHAP(nsamples=opts.get("nsamples"), background=bg, feature_names=names, seed=seed,
                                sampling=opts.get("sampling") or "stratified")
            e = method.explain_table(model, X, target=target, rows=rows)
        else:
            method = LimeTabular(bg, num_samples=opts.get("samples") or 5000, seed=seed,
                                 kernel_width=opts.get("kernel_width"), feature_names=names)
            e = method.explain(model, X, target=target)
            e.rows = list(rows)
        paths = e.save(base, force=force)
        for i, r in enumerate(rows):
            t = int(e.targets[i])
            top = np.argsort(-np.abs(e.values[i, :, t]))[:3]
            desc = ", ".join(f"{names[j]} {e.values[i, j, t]:+.3g}" for j in top)
            lines.append(f"{Path(table).name} row {r}: {m} for {e.class_names[t]} "
                         f"(p={e.predictions[i, t]:.3f}, base {e.base(i)[t]:.3f}): {desc}")
        lines.append(f"wrote {paths[0]}, {paths[1]} and {len(paths) - 2} pictures")
    return lines
