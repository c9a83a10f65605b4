"""The Parquet store of a data-set run: part files under one folder, one row per item x method x target.

    SCHEMA          the columns (documented in the README, "Explaining a data set")
    params_key      the hash that says "same method, same parameters, same model"
    Store           what is already there (for resuming), atomic part writes, --force

Every part file is written through safe_io as a unique dot-named temporary (pyarrow, pandas and Ray
skip it) and renamed into place, so a run killed at any moment leaves only whole part files. Rows are appended,
never rewritten: a rerun adds parts for the items not yet in the store. Side files start with "_"
(``_params.json``, ``_pictures/``, ``_index.html``), which Parquet readers skip too.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import numpy as np

from ..errors import InputError, OnnxaiError
from ..explanation import to_jsonable
from ..safe_io import open_atomic, write_text

PART_GLOB = "part-*.parquet"
PARAMS_FILE = "_params.json"


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a runtime dependency
        raise InputError("the data-set store needs pyarrow: pip install pyarrow") from None
    return pa, pq


# Per column: maps are raw float32 noise to a fast codec (snappy saved 0.01% of a Grad-CAM part's bytes
# while costing CPU that the model's threads want), so the map column is stored uncompressed; the rest
# (ids, JSON, importances) compress well and cheaply. zstd took 2.9x as long for ~10% fewer bytes.
COMPRESSION = {"map": "none"}
DEFAULT_CODEC = "snappy"


def compression() -> dict:
    return {name: COMPRESSION.get(name, DEFAULT_CODEC) for name in schema().names}


VECTORS = ("map", "importance", "std_error")  # no dictionary (every value differs) and no min/max statistics:
                                               # measured 12.5 -> 7.7 ms of CPU per 64 Grad-CAM rows


def column_options() -> dict:
    small = [n for n in schema().names if n not in VECTORS]
    return {"use_dictionary": small, "write_statistics": small}


def schema():
    pa, _ = _pa()
    return pa.schema([
        ("item_id", pa.string()),          # stable id: path relative to the folder, the list's path, "row:N"
        ("source", pa.string()),           # the picture's path, or "table.parquet#N"
        ("method", pa.string()),           # CLI name: grad-cam, lime, kernel-shap, ...
        ("params_hash", pa.string()),      # params_key(): method + parameters + model; key of _params.json
        ("seed", pa.int64()),              # the seed this item ran with (derived from --seed and item_id)
        ("target", pa.int32()),            # explained class index
        ("label", pa.string()),            # its name
        ("score", pa.float32()),           # its probability on the unperturbed input
        ("map", pa.binary()),              # raw little-endian float32 bytes, C order, of shape map_shape
        ("map_shape", pa.list_(pa.int32())),
        ("map_size", pa.list_(pa.int32())),  # (H, W) the map covers in input pixels when it is stored
        ("map_upsample", pa.string()),       # coarser (a CAM's layer grid), and how map_array scales it up
        ("importance", pa.list_(pa.float32())),  # per feature (superpixel, channel, column); null if none
        ("std_error", pa.list_(pa.float32())),   # standard errors where the method has them
        ("extras", pa.string()),           # JSON: the method's facts (r2, layer, base_value, ...)
        ("seconds", pa.float64()),         # wall time of this item for this method
        ("status", pa.string()),           # "ok" or "error"
        ("error", pa.string()),            # the error message when status is "error"
    ])


def params_key(method: str, params: dict, model_id: str) -> str:
    """16 hex digits of sha256 over the method, its parameters (canonical JSON) and the model's id."""
    text = json.dumps({"method": method, "params": to_jsonable(params), "model": model_id}, sort_keys=True,
                      default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_id(path) -> str:
    """The model file's sha256 (first 16 hex digits): a different model never reuses stored rows."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def overlay_name(item_id: str, method: str, target) -> str:
    """The file name of an item's overlay under ``_pictures/``: a readable stem and a hash of the id,
    so "a/b.png" and "a_b.png" never share a file and deep paths stay short."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in item_id)[-80:]
    tag = hashlib.sha256(item_id.encode()).hexdigest()[:8]
    return f"{stem}_{tag}__{method}__{target}.png"


UPSAMPLE = {"bilinear": False, "bilinear-align-corners": True}  # map_upsample -> align_corners


def map_array(row, upsample: bool = True) -> np.ndarray:
    """A stored row (dict, pandas row) -> its map as a float32 array: the full map the method gave
    (a CAM's layer-grid map scaled up exactly as the method does it, bit for bit), or with
    ``upsample=False`` the stored array of ``map_shape`` as it is."""
    stored = np.frombuffer(row["map"], dtype="<f4").reshape(tuple(row["map_shape"]))
    how = row.get("map_upsample") if hasattr(row, "get") else None
    if not upsample or how is None or (isinstance(how, float) and np.isnan(how)):
        return stored
    if how not in UPSAMPLE:
        raise InputError(f"map_upsample {how!r} is not one this onnxai knows ({', '.join(UPSAMPLE)}); "
                         "read the row with a newer onnxai, or take the stored map with upsample=False")
    from ..kernels.resize import resize_map

    h, w = (int(v) for v in row["map_size"])
    return resize_map(stored.astype(np.float64), h, w, align_corners=UPSAMPLE[how])


def compact_map(map_: np.ndarray, raw: np.ndarray | None, how: str | None):
    """(array to store, map_size, map_upsample): the coarse ``raw`` map when the method says its map is
    ``raw`` scaled up ``how`` (Method.raw_upsample; a CAM's layer grid: 196 bytes instead of 200 KB a
    picture), else ``map_`` itself."""
    if how is not None and raw is not None and raw.ndim == 2 and map_.ndim == 2 and raw.size < map_.size:
        if how not in UPSAMPLE:
            raise OnnxaiError(f"raw_upsample {how!r} is not one of {', '.join(UPSAMPLE)}")
        return raw, list(map_.shape), how
    return map_, None, None


def _float_lists(pa, vectors: list):
    """[np.ndarray | None, ...] -> a list<float32> Arrow array, built from one flat array and offsets."""
    sizes = np.array([0 if v is None else v.size for v in vectors], np.int32)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    flat = np.concatenate([v for v in vectors if v is not None]) if sizes.sum() else np.zeros(0, np.float32)
    mask = np.array([v is None for v in vectors])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32()),
                                    mask=pa.array(mask) if mask.any() else None)


def _binary(pa, maps: list):
    """[float32 array | None, ...] -> a binary Arrow array of their raw bytes, from one concatenation."""
    sizes = np.array([0 if m is None else m.nbytes for m in maps], np.int64)
    if sizes.sum() >= 2 ** 31:  # binary's int32 offsets; parts hold 64 items, so far below this
        raise OnnxaiError(f"{sizes.sum()} bytes of maps in one part file; give a smaller part size")
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    data = (np.concatenate([m.reshape(-1).view(np.uint8) for m in maps if m is not None]) if sizes.sum()
            else np.zeros(0, np.uint8))
    valid = np.array([m is not None for m in maps])
    bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.binary(), len(maps), [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)],
                                 null_count=int((~valid).sum()))


def _read(path: Path, columns=None, schema_only: bool = False):
    """A part file's table (or only its schema); a foreign or damaged file is an InputError that names
    it, and it is left untouched."""
    _, pq = _pa()
    try:
        return pq.read_schema(path) if schema_only else pq.read_table(path, columns=columns)
    except Exception as e:
        raise InputError(f"{path} is not a readable part file ({e}); move it out of --out") from None


class Rows:
    """Rows collected for one part file (column lists in SCHEMA order)."""

    def __init__(self):
        self.cols = {name: [] for name in schema().names}

    def __len__(self):
        return len(self.cols["item_id"])

    def add(self, item_id, source, method, key, seed, target=None, label=None, score=None, map_=None,
            importance=None, std_error=None, extras=None, seconds=0.0, error=None, map_size=None,
            map_upsample=None):
        c = self.cols
        m = None if map_ is None else np.ascontiguousarray(map_, dtype="<f4")
        c["item_id"].append(str(item_id))
        c["source"].append(None if source is None else str(source))
        c["method"].append(method)
        c["params_hash"].append(key)
        c["seed"].append(None if seed is None else int(seed))
        c["target"].append(None if target is None else int(target))
        c["label"].append(label)
        c["score"].append(None if score is None else float(score))
        c["map"].append(m)  # bytes in table(), in one copy for the whole part
        c["map_shape"].append(None if m is None else list(m.shape))
        c["map_size"].append(None if map_size is None else [int(v) for v in map_size])
        c["map_upsample"].append(map_upsample)
        c["importance"].append(None if importance is None else np.asarray(importance, np.float32).ravel())
        c["std_error"].append(None if std_error is None else np.asarray(std_error, np.float32).ravel())
        c["extras"].append(json.dumps(to_jsonable(extras or {}, max_array=64), default=repr))
        c["seconds"].append(float(seconds))
        c["status"].append("ok" if error is None else "error")
        c["error"].append(error)

    def extend(self, other: "Rows"):
        for k, v in other.cols.items():
            self.cols[k].extend(v)

    def table(self):
        pa, _ = _pa()
        sch = schema()
        cols = dict(self.cols)
        for name in ("importance", "std_error"):  # float32 vectors: one flat array + offsets, no Python floats
            cols[name] = _float_lists(pa, cols[name])
        cols["map"] = _binary(pa, cols["map"])
        return pa.Table.from_pydict(cols, schema=sch)

    def summary(self) -> list[tuple]:
        """(item_id, method, status, error) per row: what a Ray actor hands back to the driver."""
        c = self.cols
        return list(zip(c["item_id"], c["method"], c["status"], c["error"]))


class Store:
    """A folder of part files. ``done(key)`` -> item ids already stored for that method + parameters."""

    def __init__(self, out):
        self.out = Path(out)

    def parts(self) -> list[Path]:
        return sorted(self.out.glob(PART_GLOB)) if self.out.is_dir() else []

    def prepare(self, force: bool = False):
        """Create the folder; with ``force`` remove this store's part files and its record of parameters (and
        only those)."""
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"--out {self.out} is a file; give a folder")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OnnxaiError(f"cannot create --out {self.out}: {e.strerror or e}") from None
        if force:
            for p in self.parts():
                p.unlink()
            for p in self.out.glob(".part-*.tmp*"):
                p.unlink()
            (self.out / PARAMS_FILE).unlink(missing_ok=True)  # the record of the parts just removed

    def checked_parts(self) -> list[Path]:
        """The part files, each one's layout checked first (footers only), so that a foreign, damaged or
        older-layout file stops a run before anything is read on or rewritten."""
        names = schema().names
        parts = self.parts()
        for p in parts:
            have = _read(p, schema_only=True).names
            lacking = [n for n in names if n not in have]
            if lacking:  # mixed layouts would read back with those columns silently empty
                raise InputError(f"{p} was written by an older onnxai (no {', '.join(lacking)} column); "
                                 "give a new --out, or --force to start this store over")
        return parts

    def stored(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """(params_hash -> item ids with a row, params_hash -> item ids with an "error" row), one read."""
        done: dict[str, set[str]] = {}
        errors: dict[str, set[str]] = {}
        for p in self.checked_parts():
            t = _read(p, columns=["item_id", "params_hash", "status"])
            for key, item, status in zip(t.column("params_hash").to_pylist(), t.column("item_id").to_pylist(),
                                         t.column("status").to_pylist()):
                done.setdefault(key, set()).add(item)
                if status == "error":
                    errors.setdefault(key, set()).add(item)
        return done, errors

    def drop_errors(self, keys) -> int:
        """Remove the status "error" rows of these params_hash keys (``--retry-errors``: those items
        run again). Each part that holds some is replaced by its other rows atomically (or removed when
        none are left); ok rows and other keys' rows stay as they are. -> rows removed."""
        import pyarrow.compute as pc

        pa, pq = _pa()
        keys, dropped = pa.array(sorted(set(keys)), pa.string()), 0
        for p in self.checked_parts():  # every layout checked before the first part is rewritten
            t = _read(p)
            bad = pc.and_(pc.equal(t.column("status"), "error"), pc.is_in(t.column("params_hash"), keys))
            n = int(pc.sum(bad).as_py() or 0)
            if not n:
                continue
            try:
                if n == t.num_rows:
                    p.unlink()
                else:
                    with open_atomic(p, "wb", force=True) as f:
                        pq.write_table(t.filter(pc.invert(bad)), f, compression=compression(), **column_options())
            except OSError as e:
                raise OnnxaiError(f"cannot rewrite {p}: {e.strerror or e}; it is unchanged") from None
            dropped += n
        return dropped

    def write(self, rows: Rows, tag: str = "") -> Path | None:
        """Write rows as one new part file, atomically. Returns its path (None when there are no rows)."""
        if not len(rows):
            return None
        _, pq = _pa()
        name = f"part-{tag + '-' if tag else ''}{uuid.uuid4().hex[:12]}.parquet"
        final = self.out / name
        try:  # a unique dot-named temporary (readers skip it), then a rename; never through a link
            with open_atomic(final, "wb", force=False) as f:
                pq.write_table(rows.table(), f, compression=compression(), **column_options())
        except OSError as e:
            raise OnnxaiError(f"cannot write {final}: {e.strerror or e}; the parts already written are kept, "
                              "rerun to resume") from None
        return final

    def write_params(self, entries: dict[str, dict]):
        """Merge {params_hash: {method, params, model}} into _params.json (atomically)."""
        path = self.out / PARAMS_FILE
        try:
            known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise InputError(f"{path} (the store's record of parameters) is damaged ({e}); restore it, or "
                             "start the store over with --force") from None
        if not isinstance(known, dict):
            raise InputError(f"{path} (the store's record of parameters) is not a JSON object; restore it, or "
                             "start the store over with --force")
        known.update(to_jsonable(entries))
        write_text(path, json.dumps(known, indent=2, sort_keys=True, default=repr))
