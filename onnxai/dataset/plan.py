"""Planning a data-set run: everything checked before the store is touched, then what is left to do.

    make_plan    model, methods (options routed to every method that takes them), the source, the
                 table's background (summarised once), the store keys; then the store: --force clears
                 it, otherwise the items already stored for the same method + parameters are skipped
    Summary      the counts a run ends with, and its one-line summary

A bad model, method, option, folder, list or table raises here, before anything under --out is
created or removed: nothing already in the store is lost.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..methods import takes
from .predict import DATASET_METHODS as METHODS
from .predict import make as make_method
from .sources import PictureItem, TableSource, list_pictures
from .store import Store, model_id, params_key
from .worker import Job, prepare_all

TABLE_NAMES = {"lime": "lime-tabular"}  # as api.explain: the table method a picture name means
BACKGROUND_METHODS = ("kernel-shap", "lime-tabular")  # the table methods that read training rows


@dataclass
class Summary:
    done: int = 0       # items with every method stored as "ok" in this run
    skipped: int = 0    # items every method of which was already in the store
    failed: int = 0     # items with at least one "error" row from this run
    failed_before: int = 0  # items of the source with an "error" row from an earlier run, still stored
    seconds: float = 0.0
    out: str = ""
    engine: str = "local"
    errors: list = field(default_factory=list)  # (item_id, method, message), the first few

    def line(self) -> str:
        ran = self.done + self.failed
        rate = f", {ran / self.seconds:.1f} items/s" if self.seconds > 0 and ran else ""
        before = (f"; {self.failed_before} item(s) failed in an earlier run (--retry-errors runs them again)"
                  if self.failed_before else "")
        return (f"{self.done} done, {self.skipped} skipped, {self.failed} failed in {self.seconds:.1f}s"
                f"{rate} ({self.engine}) -> {self.out}{before}")


@dataclass
class Plan:
    job: Job
    model: object
    kind: str                              # "pictures" or "tables"
    store: Store
    items: list = field(default_factory=list)      # pictures: PictureItems still to run
    table: TableSource | None = None
    skip: dict = field(default_factory=dict)       # tables: {method: item ids already stored}
    skipped: int = 0
    total: int | None = None                       # items in the source (None: a CSV not yet read)
    missing: list = field(default_factory=list)
    warming: Future | None = None                  # make_plan(warm=True): the methods' prepare on ``model``
    retried: int = 0                               # error rows removed to run their items again
    failed_before: int = 0                         # items with error rows stored by an earlier run (kept)


def route(names: list[str], params: dict) -> dict[str, dict]:
    """Each parameter to every method that takes it; one that none takes is an error."""
    per = {n: {} for n in names}
    for key, value in params.items():
        to = [n for n in names if takes(METHODS[n], key)]
        if not to:
            raise InputError(f"{key}= is not a parameter of {', '.join(names)}")
        for n in to:
            per[n][key] = value
    return per


def make_plan(model, source, methods, out, target=None, params=None, method_params=None, background=None,
              force=False, pictures=False, model_options=None, chunk_rows=4096, warm=False,
              retry_errors=False, model_sha=None) -> Plan:
    """retry_errors: the items whose rows for these methods + parameters are errors run again (their
    error rows are removed from the store first; Store.drop_errors). warm: start each picture method's
    ``prepare`` on the plan's model (a CAM's layer session) on a background thread now, while the rest
    is planned; the local engine waits for it before its first pass (Ray actors load their own models:
    no use there). model_sha: the model file's id (store.model_id) or a Future of it, e.g. hashed
    while the caller loaded the model (``hash_model``); None: hashed here (while loading, when given
    a path)."""
    from .. import tables
    from ..model import Model, load

    model_options = dict(model_options or {})
    if isinstance(model, Model):
        if model.path is None:
            raise InputError("explain_dataset needs a model loaded from a file (workers load it again)")
        model_path = str(model.path)
    else:
        model_path = str(model)
        if not Path(model_path).is_file():
            raise InputError(f"model file not found: {model_path}")
        if model_sha is None:
            model_sha = hash_model(model_path)
        model = load(model_path, **model_options)
    names = [methods] if isinstance(methods, str) else list(methods)
    names = [n.strip().lower().replace("_", "-") for m in names for n in m.split(",") if n.strip()]
    if not names:
        raise InputError("no method given; use --methods grad-cam,lime")
    is_image = model.input.is_image
    names = [n if is_image else TABLE_NAMES.get(n, n) for n in names]
    for n in names:
        if n not in METHODS:
            raise InputError(f"unknown method {n!r}; available: {', '.join(METHODS)}")
        inputs = METHODS[n].inputs
        if (inputs == "tables" and is_image) or (inputs == "pictures" and not is_image):  # predict: "both"
            raise InputError(f"{n} explains {inputs}, but {Path(model_path).name} takes "
                             f"{'pictures' if is_image else 'table rows'}")
    params = dict(params or {})
    seed = int(params.get("seed", 0))
    per = route(names, {k: v for k, v in params.items() if v is not None})
    for n, extra in (method_params or {}).items():
        n = n if is_image else TABLE_NAMES.get(n, n)
        if n not in per:
            raise InputError(f"parameters for {n} but the methods are {names}")
        per[n].update(extra)
    for n in names:
        if takes(METHODS[n], "progress"):
            per[n]["progress"] = False  # one bar for the whole run
        if not is_image and n in BACKGROUND_METHODS:
            per[n]["background"] = None if background is None else str(background)
    kind = "pictures" if is_image else "tables"
    table, items, missing, shipped = None, [], [], None
    if is_image:
        items, missing = list_pictures(source)
    else:
        table = TableSource(source, tables.model_width(model), chunk_rows)
        needing = [n for n in names if n in BACKGROUND_METHODS]  # predict needs none
        shipped = _backgrounds(model, needing, per, background) if needing else {}
    built = {n: make_method(n, **{**{k: v for k, v in per[n].items() if k != "background"},
                                  **({"background": shipped[n]} if shipped and n in shipped else {})})
             for n in names}

    mid = model_sha.result() if isinstance(model_sha, Future) else (model_sha or model_id(model_path))
    warming = _background("onnxai-warm", prepare_all, list(built.values()), model) if warm and is_image else None
    keyed = [(n, per[n], params_key(n, {**built[n].params(), "background": per[n].get("background")}, mid))
             for n in names]
    job = Job(model_path, model_options, [(n, {k: v for k, v in p.items() if k != "background"}, key)
                                          for n, p, key in keyed],
              target=target, seed=seed, background=shipped)
    store = Store(out)
    store.prepare(force)  # the first write under --out: everything above has been checked
    if pictures and is_image:
        job.pictures = str(store.out / "_pictures")
        Path(job.pictures).mkdir(exist_ok=True)
    store.write_params({key: {"method": n, "params": built[n].params(), "model": model_path, "model_sha256": mid}
                        for n, _, key in keyed})
    retried = store.drop_errors([key for _, _, key in keyed]) if retry_errors and not force else 0
    done, errors = store.stored()
    failed = set().union(*(errors.get(key, ()) for _, _, key in keyed))
    plan = Plan(job, model, kind, store, table=table, missing=missing, warming=warming, retried=retried,
                failed_before=len(failed) if not is_image else sum(it.item_id in failed for it in items))
    if is_image:
        plan.total = len(items)
        for it in items:
            left = tuple(n for n, _, key in keyed if it.item_id not in done.get(key, ()))
            if not left:
                plan.skipped += 1
            else:
                plan.items.append(PictureItem(it.item_id, it.path, it.target, left if len(left) < len(names) else None))
    else:
        plan.total = table.rows
        plan.skip = {n: done.get(key, set()) for n, _, key in keyed}
    return plan


def hash_model(path) -> Future:
    """store.model_id(path) on a daemon thread: sha256 lets go of the GIL, so hashing beside the model's
    load costs no time (a 19 MB model: load 52 ms alone and 52 ms with the hash beside it, which alone
    takes 14 ms). Before the warm-up, not beside it: there it took 80 ms."""
    return _background("onnxai-hash", model_id, path)


def _background(name: str, fn, *args) -> Future:
    """fn(*args) on a daemon thread of that name, answered by a Future."""
    import threading

    fut: Future = Future()

    def go():
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits
            fut.set_exception(e)

    threading.Thread(target=go, name=name, daemon=True).start()
    return fut


def _backgrounds(model, names, per, background) -> dict:
    """Per table method, its background prepared once on the driver: Kernel SHAP's summary, LIME's rows."""
    from .. import tables

    if background is None:
        raise InputError("a table model needs --background (training rows, CSV or Parquet) for "
                         f"{' and '.join(names)}")
    path = Path(background)
    width = tables.model_width(model)
    if path.suffix.lower() == ".parquet":
        src = TableSource(path, width, chunk_rows=1 << 16)
        import numpy as np

        data = np.concatenate([X for _, X in src.chunks()])
    else:
        data, _ = tables.read_table(path, expect=width)
    out = {}
    for n in names:
        if n == "kernel-shap":
            m = make_method("kernel-shap", **{**{k: v for k, v in per[n].items() if k != "background"},
                                              "background": data})
            out[n] = m.background_for(model, data[:1])
        else:
            out[n] = data
    return out
