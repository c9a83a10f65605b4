"""``onnxai explain`` on a table model: CSV rows in; contributions (CSV/JSON) and bar/waterfall PNGs out.
``onnxai predict`` on a table model: CSV / Parquet rows in, the top class (or every class) per row out.

The methods for tables are Kernel SHAP (over background rows) and tabular LIME; the method options
reach them by the same rule as for pictures (each option to the methods whose constructor takes it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..safe_io import clean_label
from .method_options import params_for, route
from .outputs import check_outputs, unique_stems

PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def table_methods() -> dict:
    """The methods that explain table rows, by CLI name."""
    from ..methods.kernel_shap import KernelSHAP
    from ..methods.lime_tabular import LimeTabular

    return {"kernel-shap": KernelSHAP, "lime": LimeTabular}


def explain_csv(model, tables, methods: list[str], settings: dict, params, table_opts: dict, target, out: Path,
                force: bool) -> list[str]:
    """``onnxai explain MODEL data.csv --rows ... --method kernel-shap|lime --background train.csv``.

    settings: the method options given, {parameter: (option, value)}; params: --param METHOD.KEY=VALUE
    items (they win over the options); table_opts: rows, background,
    feature_names. Writes OUT/STEM_METHOD.csv (one line per row and feature: the target class's
    contribution), .json (every class, base values, predictions) and per row _bar.png and
    _waterfall.png. Checks every file first and writes nothing when one exists, unless force.
    Returns lines to print.
    """
    from ..tables import model_width, output_paths, parse_rows, read_table

    classes = table_methods()
    unknown = [m for m in methods if m not in classes]
    if unknown:
        raise InputError(f"method {unknown[0]!r} explains pictures; for tables use --method kernel-shap or lime")
    per_method = route(methods, settings, classes)
    by_method = params_for(methods, params)
    for m in methods:
        per_method[m].update(by_method.get(m, {}))
    M = model_width(model)
    pictures = [str(t) for t in tables if Path(t).suffix.lower() in PICTURE_SUFFIXES]
    if pictures:
        raise InputError(f"{pictures[0]} is a picture, but this model takes table rows ({model.input.describe()}); "
                         "give a CSV file of rows")
    if table_opts.get("background") is None:
        raise InputError("explaining a table needs --background train.csv (rows like the model's training data)")
    bg, _ = read_table(table_opts["background"], expect=M)
    bg = bg[np.isfinite(bg).all(axis=1)]
    if bg.shape[0] == 0:
        raise InputError(f"{table_opts['background']} has no complete rows (every row has an empty or NaN cell)")
    jobs = []
    for table, stem in zip(tables, unique_stems(tables)):  # same-named tables from two folders differ
        X, names = read_table(table, table_opts.get("feature_names"), expect=M)
        rows = parse_rows(table_opts.get("rows"), X.shape[0])
        for m in methods:
            base = out / f"{stem}_{m}"
            jobs.append((table, X[rows], names, rows, m, base))
    check_outputs(out, [p for _, _, _, rows, _, base in jobs for p in output_paths(base, rows)], force)
    lines = []
    for table, X, names, rows, m, base in jobs:
        params = per_method[m]
        if m == "kernel-shap":
            params = {"num_samples": None, **params}  # tables: shap's automatic budget unless given
            method = classes[m](background=bg, feature_names=names, **params)
            e = method.explain_table(model, X, target=target, rows=rows)
        else:
            method = classes[m](bg, feature_names=names, **params)
            e = method.explain(model, X, target=target)
            e.rows = list(rows)
        paths = e.save(base, force=force)
        for i, r in enumerate(rows):
            t = int(e.targets[i])
            top = np.argsort(-np.abs(e.values[i, :, t]))[:3]
            desc = ", ".join(f"{clean_label(names[j])} {e.values[i, j, t]:+.3g}" for j in top)
            lines.append(f"{Path(table).name} row {r}: {m} for {clean_label(e.class_names[t])} "
                         f"(p={e.predictions[i, t]:.3f}, base {e.base(i)[t]:.3f}): {desc}")
        lines.append(f"wrote {paths[0]}, {paths[1]} and {len(paths) - 2} pictures")
    return lines


def predict_rows(model, tables, top: int) -> list[dict]:
    """``onnxai predict MODEL rows.csv``: per table and row, the classes by probability (``top`` of them).
    Returns [{"table", "row", "top": [{"index", "label", "probability"}], "probabilities": [...]}]."""
    from ..tables import model_width, read_table

    M = model_width(model)
    pictures = [str(t) for t in tables if Path(t).suffix.lower() in PICTURE_SUFFIXES]
    if pictures:
        raise InputError(f"{pictures[0]} is a picture, but this model takes table rows ({model.input.describe()}); "
                         "give a CSV or Parquet file of rows")
    out = []
    for table in tables:
        X, _ = read_table(table, expect=M)
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        if bad.size:
            raise InputError(f"{table}, row {bad[0]}: an empty or NaN cell; predict needs complete rows")
        probs = model.scores(X).astype(np.float64)
        for r, p in enumerate(probs):
            order = np.argsort(-p, kind="stable")[:top]
            out.append({"table": str(table), "row": r,
                        "top": [{"index": int(c), "label": model.label(int(c)), "probability": float(p[c])}
                                for c in order],
                        "probabilities": [float(v) for v in p]})
    return out
