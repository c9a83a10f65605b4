"""The Ray engine (``pip install 'onnxai[ray]'``): Ray Data ``map_batches`` over an actor pool.

Each actor (``ExplainActor``) holds one Worker: one loaded Model, one onnxruntime session with as many
intra-op threads as CPUs given to the actor (``num_gpus`` per actor when CUDA is asked for), built
once. The run's Job (methods, parameters, the table's background summarised on the driver) is put
in the object store once and fetched by each actor. Actors write their own part files, atomically,
into the same store (``--out`` must be a folder every node sees) and hand back only (item id,
method, status) to the driver, which drives the one progress bar and the summary.

The driver lists the items (a folder, a list, or the table's rows in chunks, each put in the object
store as it is read, so the driver holds one chunk at a time) and skips those already stored; Ray
Data spreads them over the actors. Seeds come from (seed, item id), so the maps
equal those of the local engine bit for bit, whatever the partitioning.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from .local import Tally, progress_bar
from .plan import Plan, Summary
from .sources import PictureItem
from .store import Store

ROOT = str(Path(__file__).resolve().parent.parent.parent)  # the folder that holds the onnxai package


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError("--engine ray needs Ray Data: pip install 'onnxai[ray]'") from None
    return ray


def runtime_env() -> dict:
    """Workers import this checkout's onnxai (the driver's), whatever is installed on the nodes."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path, "ONNXAI_QUIET": "1"}}


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (or start a local one). True when this call started Ray."""
    ray = _ray()
    import logging
    import warnings

    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"ray\..*")
    _probe(address)
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus, runtime_env=runtime_env(),
                 log_to_driver=False, include_dashboard=False, configure_logging=False)
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"cannot reach the Ray cluster at {address!r} ({first}); start one with "
                         "`ray start --head`, or leave --address out for a local one") from None
    return True


def _probe(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT that does not accept a connection fails here in seconds (ray.init would retry for minutes)."""
    import socket

    if not address or address == "auto" or address.startswith(("ray://", "local")):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address {address!r} is not HOST:PORT, auto or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise InputError(f"the Ray cluster at {address} does not answer ({e.strerror or e}); start one with "
                         "`ray start --head`, or leave --address out for a local one") from None


class ExplainActor:
    """One per Ray actor: builds a Worker once, explains each batch it is given, writes its part."""

    def __init__(self, job_ref, threads: int, out: str):
        import ray

        from .worker import Worker

        self.worker = Worker(ray.get(job_ref[0]), threads=threads)
        self.worker.warm()
        self.store = Store(out)
        self.table_source = None

    def __call__(self, batch: dict) -> dict:
        ids = [str(v) for v in batch["item_id"]]
        methods = [tuple(m.split(",")) if m else None for m in batch["methods"]]
        if "x" in batch:
            X = np.asarray(np.stack(list(batch["x"])), np.float64)
            names = [n for n, *_ in self.worker.methods]
            skip = {n: {i for i, ms in zip(ids, methods) if ms is not None and n not in ms} for n in names}
            rows = self.worker.table(ids, X, _Described(str(batch["source"][0])), skip)
        else:
            targets = [json.loads(t) for t in batch["target"]]
            items = [PictureItem(i, str(p), t, ms) for i, p, t, ms in zip(ids, batch["path"], targets, methods)]
            rows = self.worker.pictures(items)
        self.store.write(rows, "ray")
        triples = rows.summary()
        return {k: np.array([t[j] for t in triples], object)
                for j, k in enumerate(("item_id", "method", "status", "error"))}


class _Described:
    def __init__(self, path):
        self.path = path

    def describe(self, item_id):
        return f"{self.path}#{item_id}"


def run_ray(plan: Plan, progress: bool = True, workers: int = 2, threads: int = 1, address: str | None = None,
            batch_items: int | None = None, gpus_per_worker: float = 0) -> Summary:
    ray = _ray()
    t0 = time.perf_counter()
    started = connect(address, num_cpus=workers * threads)
    summary = Summary(skipped=plan.skipped, failed_before=plan.failed_before, out=str(plan.store.out),
                      engine=f"ray, {workers} x {threads} CPU")
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.verbose_stats_logs = False
        ds, todo = _dataset(ray, plan, workers)
        summary.skipped = plan.skipped
        if ds is None:
            summary.seconds = time.perf_counter() - t0
            return summary
        job_ref = [ray.put(plan.job)]  # the job (and the table's background) shipped once
        out = ds.map_batches(ExplainActor, fn_constructor_kwargs=dict(job_ref=job_ref, threads=threads,
                                                                      out=str(plan.store.out)),
                             batch_size=batch_items or (16 if plan.kind == "pictures" else 256),
                             compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads, num_gpus=gpus_per_worker or None,
                             batch_format="numpy", zero_copy_batch=True)
        with progress_bar(todo, progress, "explain-dataset (ray)") as bar:
            tally = Tally(summary, bar)
            for b in out.iter_batches(batch_size=None, batch_format="numpy"):
                tally.add(zip(b["item_id"], b["method"], b["status"], b["error"]))
    finally:
        if started:
            ray.shutdown()
    summary.seconds = time.perf_counter() - t0
    return summary


def _dataset(ray, plan: Plan, workers: int):
    """The items still to run as a Ray Dataset, and how many there are."""
    names = [n for n, *_ in plan.job.methods]
    if plan.kind == "pictures":
        if not plan.items:
            return None, 0
        rows = [{"item_id": it.item_id, "path": it.path, "target": json.dumps(it.target),
                 "methods": ",".join(it.methods) if it.methods else ""} for it in plan.items]
        blocks = max(1, min(len(rows), max(4 * workers, len(rows) // 64)))
        return ray.data.from_items(rows, override_num_blocks=blocks), len(rows)
    import pyarrow as pa

    refs, todo = [], 0  # each chunk goes to the object store as it is read: the driver keeps one
    for ids, X in plan.table.chunks():
        keep, methods = [], []
        for i, item in enumerate(ids):
            left = [n for n in names if item not in plan.skip.get(n, ())]
            if left:
                keep.append(i)
                methods.append(",".join(left) if len(left) < len(names) else "")
        plan.skipped += len(ids) - len(keep)
        if keep:
            todo += len(keep)
            refs.append(ray.put(pa.table({  # one block per chunk
                "item_id": [ids[i] for i in keep], "methods": methods,
                "source": [str(plan.table.path)] * len(keep),
                "x": pa.FixedSizeListArray.from_arrays(pa.array(X[keep].ravel()), X.shape[1]),
            })))
    if not refs:
        return None, 0
    if len(refs) < 2 * workers:  # enough blocks for every actor (a repartition would need CPUs the actors hold)
        whole = pa.concat_tables(ray.get(refs))  # few chunks: a small table
        step = -(-whole.num_rows // (2 * workers))
        refs = [ray.put(whole.slice(i, step)) for i in range(0, whole.num_rows, step)]
    return ray.data.from_arrow_refs(refs), todo
