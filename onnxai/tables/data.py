"""Table data: CSV files and rows checked against a tabular model.

    read_table           a CSV (or Parquet, with pyarrow) -> (X (n, M) float64, feature names), with errors
                         that say what to fix
    parse_rows           "0,5,9" / "3-7" -> row indices, checked against the table
    table_rows           rows to explain (an array or a CSV path) checked against the model's width
    model_width          the number of features per row a tabular model takes
    class_names          the model's class names in output-column order
    resolve_row_targets  one class per row: the predicted one, or one given for every row

Class order rule: column c of every probability array onnxai returns for a tabular classifier is the
c-th class of the ZipMap / classifier node's ``classlabels_int64s`` or ``classlabels_strings`` (the
order of scikit-learn's ``classes_``, read by graph_ends.graph_class_labels); ``Model.labels`` holds
those names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..safe_io import existing_file, read_csv_rows, read_user_text


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
    path = existing_file(path, "table file (CSV or Parquet)")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path, feature_names, expect)
    rows = read_csv_rows(path, "CSV table", "comma-separated numbers, one row per line, or a Parquet file")
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


def _read_parquet(path: Path, feature_names, expect):
    """A Parquet file (needs pyarrow) -> (X, names); every column must be numeric."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"reading {path} needs pyarrow (pip install pyarrow), or give the table as CSV") from None
    import pyarrow as pa
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"cannot read {path} as Parquet ({e}); give a Parquet file or a CSV") from None
    cols = []
    for name, col in zip(table.column_names, table.columns):
        try:
            cols.append(np.asarray(col.to_numpy(zero_copy_only=False), np.float64))
        except (TypeError, ValueError):
            raise InputError(f"{path}, column {name!r} is not numeric; onnxai explains numeric tables") from None
    if not cols or not len(cols[0]):
        raise InputError(f"{path} has no rows or no columns")
    X = np.stack(cols, axis=1)
    if expect is not None and X.shape[1] != expect:
        raise InputError(f"{path} has {X.shape[1]} columns but the model takes {expect} features per row; "
                         "drop label/index columns or give the table the model was trained on")
    return X, _names(feature_names, X.shape[1]) or list(table.column_names)


def _names(feature_names, width: int):
    if feature_names is None:
        return None
    if _names_file(feature_names):
        text = read_user_text(Path(str(feature_names)), "feature names file")
        feature_names = [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]
    elif isinstance(feature_names, str):
        feature_names = [t.strip() for t in feature_names.split(",")]
    elif isinstance(feature_names, (bytes, dict)) or not hasattr(feature_names, "__iter__"):
        raise InputError(f"feature_names is a list of names, 'a,b,c' or a file of names; got {feature_names!r}")
    names = [str(n) for n in feature_names]
    if len(names) != width:
        raise InputError(f"{len(names)} feature names were given for {width} columns; give one name per column")
    return names


def _names_file(value) -> bool:
    """Is ``value`` a file of names? A Path, or text without a comma that names an existing file; a
    comma list is never tried as a path (a long one is not a valid file name)."""
    if isinstance(value, Path):
        return True
    if not isinstance(value, str) or "," in value:
        return False
    try:
        return Path(value).is_file()
    except (OSError, ValueError):  # too long, or a NUL in it: not a file name
        return False


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
    k = model.class_index(target)
    if k >= preds.shape[1]:  # score="raw" on a one-column model: the column itself, not the two classes
        raise InputError(f"class {k}: the scores explained have {preds.shape[1]} column(s) (score='raw' reads the "
                         f"output as the model gives it); give a class below {preds.shape[1]}")
    return np.full(preds.shape[0], k, np.int64)
