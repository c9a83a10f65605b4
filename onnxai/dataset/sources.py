"""Where the items of a data-set run come from.

    PictureItem      one picture: item_id (stable across runs), path, target (None: the run's --target),
                     methods (those not yet in the store; None: all)
    list_pictures    a folder (recursive, sorted), a list file (.txt: one path a line; .csv: a ``path``
                     column, optional ``target`` and ``id`` columns), or a Python list of paths
    TableSource      a Parquet or CSV table read in row chunks (pyarrow); item ids are the row numbers
                     (or an ``id`` column); every other column is a feature, in file order
    item_seed        the seed of one item, derived from (seed, item_id): results do not depend on the
                     order, the partitioning or the number of workers

Everything that can be checked before a run starts is checked here, with one clear line each: a
missing or empty folder, a list whose files are missing, a table with the wrong columns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..safe_io import read_csv_rows

PICTURE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
ID_COLUMN = "id"


def item_seed(seed: int, item_id: str) -> int:
    """A 31-bit seed from (seed, item_id): the same item always draws the same masks."""
    digest = hashlib.blake2b(f"{int(seed)}\x00{item_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


@dataclass(frozen=True)
class PictureItem:
    item_id: str
    path: str
    target: object = None
    methods: tuple | None = None  # the methods still to run on it (None: all)


def list_pictures(source) -> tuple[list[PictureItem], list[str]]:
    """-> (items, missing paths). A folder is walked recursively; ids are paths relative to it."""
    if isinstance(source, (list, tuple)):
        items = [PictureItem(str(p), str(p)) for p in source]
        return items, [i.path for i in items if not Path(i.path).is_file()]
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path} does not exist; give a folder of pictures, a .txt/.csv list of paths, or a table")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in PICTURE_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"{path} holds no pictures ({', '.join(sorted(PICTURE_SUFFIXES))}, searched "
                             "recursively)")
        return [PictureItem(p.relative_to(path).as_posix(), str(p)) for p in files], []
    if path.suffix.lower() in (".csv", ".txt", ".lst"):
        items = _read_list(path)
        if not items:
            raise InputError(f"{path} lists no pictures")
        return items, [i.path for i in items if not Path(i.path).is_file()]
    raise InputError(f"{path} is neither a folder nor a .txt/.csv list of pictures")


def _read_list(path: Path) -> list[PictureItem]:
    base = path.parent
    rows = read_csv_rows(path, "list of pictures", "one path per line")
    if not rows:
        return []
    head = [c.strip().lower() for c in rows[0]]
    if "path" in head:
        col = {name: head.index(name) for name in ("path", "target", ID_COLUMN) if name in head}
        rows = rows[1:]
    elif path.suffix.lower() == ".csv" and len(head) > 1 and not Path(rows[0][0].strip()).suffix:
        raise InputError(f"{path}: a list of pictures needs a 'path' column (optional 'target', 'id'); "
                         f"the header is {rows[0]}")
    else:
        col = {"path": 0}
    items = []
    for r in rows:
        raw = r[col["path"]].strip()
        p = Path(raw) if Path(raw).is_absolute() else base / raw
        target = r[col["target"]].strip() if "target" in col and len(r) > col["target"] else None
        item_id = r[col[ID_COLUMN]].strip() if ID_COLUMN in col else raw
        items.append(PictureItem(item_id, str(p), _target(target)))
    return items


def _target(text):
    if text in (None, ""):
        return None
    return int(text) if text.lstrip("-").isdigit() else text


class TableSource:
    """A Parquet or CSV table of rows to explain, read ``chunk_rows`` rows at a time."""

    csv_block_bytes = 1 << 22  # pyarrow reads a CSV in blocks of this size; the first one sets the column types

    def __init__(self, path, width: int | None, chunk_rows: int = 4096):
        import pyarrow as pa

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"table file not found: {self.path}")
        self.kind = self.path.suffix.lower()
        if self.kind not in (".parquet", ".csv"):
            raise InputError(f"{self.path}: a table model reads .parquet or .csv rows")
        self.chunk_rows = int(chunk_rows)
        schema = self._schema()
        names = list(schema.names)
        self.id_column = next((n for n in names if n.lower() == ID_COLUMN), None)
        self.columns = [n for n in names if n != self.id_column]
        bad = [n for n in self.columns if not (pa.types.is_integer(schema.field(n).type)
                                              or pa.types.is_floating(schema.field(n).type)
                                              or pa.types.is_boolean(schema.field(n).type))]
        if bad:
            raise InputError(f"{self.path}: column(s) {bad} are not numeric; the rows must hold only the model's "
                             f"features (plus an optional '{ID_COLUMN}' column)")
        if width is not None and len(self.columns) != width:
            raise InputError(f"{self.path} has {len(self.columns)} feature columns {self.columns[:8]}"
                             f"{'...' if len(self.columns) > 8 else ''} but the model takes {width} per row; "
                             f"keep only the features (an '{ID_COLUMN}' column is allowed)")
        self.rows = self._count()

    def _schema(self):
        try:
            if self.kind == ".parquet":
                import pyarrow.parquet as pq

                return pq.read_schema(self.path)
            return self._csv_reader().schema
        except Exception as e:
            raise InputError(f"{self.path} cannot be read as a {self.kind[1:]} table ({e})") from None

    def _csv_reader(self):
        import pyarrow.csv as pcsv

        return pcsv.open_csv(self.path, read_options=pcsv.ReadOptions(block_size=self.csv_block_bytes))

    def _count(self) -> int | None:
        if self.kind == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).metadata.num_rows
        return None  # a CSV is counted as it streams

    def _batches(self):
        if self.kind == ".parquet":
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(self.path).iter_batches(batch_size=self.chunk_rows)
        else:
            yield from self._csv_reader()

    def chunks(self):
        """Yield (item ids, X (r, M) float64) chunks of at most ``chunk_rows`` rows, in file order."""
        import pyarrow as pa

        start = 0
        batches = self._batches()
        while True:
            try:  # a CSV's column types come from its first block: a later cell can still fail to convert
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as e:
                raise InputError(f"{self.path}: reading the rows after the first {start:,} failed ({e}); fix the "
                                 "file and run again: the rows already explained stay in the store and are "
                                 "skipped") from None
            if batch is None:
                return
            for lo in range(0, batch.num_rows, self.chunk_rows):
                part = batch.slice(lo, self.chunk_rows)
                X = np.column_stack([part.column(n).to_numpy(zero_copy_only=False).astype(np.float64)
                                     for n in self.columns]) if self.columns else np.zeros((part.num_rows, 0))
                if self.id_column is not None:
                    ids = [str(v) for v in part.column(self.id_column).to_pylist()]
                else:
                    ids = [str(start + i) for i in range(part.num_rows)]
                start += part.num_rows
                yield ids, X

    def describe(self, item_id: str) -> str:
        return f"{self.path}#{item_id}"
