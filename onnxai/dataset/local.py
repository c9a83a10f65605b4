"""The local engine: one process, one Model, pictures decoded in a thread pool while the model runs.

Pictures go in batches of ``batch_items``; the next batches are decoded (Pillow, resize, crop,
normalise: threads, most of it outside the GIL) while the current one is explained, and at most
``ahead`` batches wait decoded, so memory is bounded by the batch and part sizes, not by the data
set. Tables stream in row chunks. Rows are written as a part file every ``part_items`` items (and on
Ctrl-C, what is finished); one progress bar counts items, failures and items/s.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from ..errors import OnnxaiError
from .plan import Plan, Summary
from .store import Rows
from .worker import Worker


def progress_bar(total, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", file=sys.stderr, disable=not enabled or total == 0, dynamic_ncols=True,
                smoothing=0.1)


class Tally:
    """Counts items done / failed from the rows of a batch (an item failed if any of its rows did)."""

    def __init__(self, summary: Summary, bar):
        self.summary, self.bar = summary, bar

    def add(self, triples) -> None:
        status: dict[str, bool] = {}
        for item_id, method, st, error in triples:
            ok = status.get(item_id, True) and st == "ok"
            status[item_id] = ok
            if st != "ok" and len(self.summary.errors) < 20:
                self.summary.errors.append((item_id, method, error))
        failed = sum(1 for v in status.values() if not v)
        self.summary.failed += failed
        self.summary.done += len(status) - failed
        self.bar.update(len(status))
        if self.summary.failed:
            self.bar.set_postfix(failed=self.summary.failed, refresh=False)


CTRL_C_GRACE = 5.0  # seconds a Ctrl-C waits for the batch being assembled before dropping it


class Background:
    """One daemon thread that runs the calls given to it in order, each answered by a Future. Daemon: a
    Ctrl-C does not wait for a long call (a LIME batch) to end; what it was making is dropped."""

    def __init__(self, name: str):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self):
        while (job := self.jobs.get()) is not None:
            fut, fn, args = job
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(*args))
                except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
                    fut.set_exception(e)

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        self.jobs.put((fut, fn, args))
        return fut

    def close(self):
        self.jobs.put(None)


class PartWriter:
    """Writes part files on a background thread, so compressing and writing a part overlaps the next
    batch's inference (pyarrow does it outside the GIL). At most one part is in flight; an error from
    a write comes back on the next ``write`` or on ``close``, never lost."""

    def __init__(self, store):
        self.store, self.thread, self.pending = store, Background("onnxai-write"), None

    def write(self, rows: Rows) -> None:
        self.wait()
        if len(rows):
            self.pending = self.thread.submit(self.store.write, rows, "local")

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.thread.close()


def run_local(plan: Plan, progress: bool = True, batch_items: int | None = None, decode_threads: int = 2,
              part_items: int = 64, threads: int | None = None, ahead: int = 2) -> Summary:
    t0 = time.perf_counter()
    worker = Worker(plan.job, model=plan.model if threads is None else None, threads=threads)
    summary = Summary(skipped=plan.skipped, failed_before=plan.failed_before, out=str(plan.store.out),
                      engine="local")
    batch_items = batch_items or worker.model.batch_size
    todo = len(plan.items) if plan.kind == "pictures" else plan.total
    with progress_bar(todo, progress, "explain-dataset") as bar:
        tally = Tally(summary, bar)
        if plan.kind == "pictures":
            _pictures(plan, worker, tally, batch_items, decode_threads, part_items, ahead)
        else:
            _tables(plan, worker, tally, part_items, summary)
    summary.seconds = time.perf_counter() - t0
    return summary


def _pictures(plan, worker, tally, batch_items, decode_threads, part_items, ahead):
    """Three stages overlap: decoding (a thread pool, ``ahead`` batches), the batched first passes (this
    thread) and the per-item explanations and rows (one background thread, a batch behind), so the
    Python work of one batch runs while onnxruntime works on the next."""
    items = plan.items
    batches = [items[i:i + batch_items] for i in range(0, len(items), batch_items)]
    state = {"rows": Rows(), "in_part": 0}
    writer, assembler = PartWriter(plan.store), Background("onnxai-assemble")

    def collect(batch, fut):
        done = fut.result()
        state["rows"].extend(done)
        state["in_part"] += len(batch)
        tally.add(done.summary())
        if state["in_part"] >= part_items:
            writer.write(state["rows"])
            state["rows"], state["in_part"] = Rows(), 0

    with ThreadPoolExecutor(max(1, decode_threads), thread_name_prefix="onnxai-decode") as pool:
        pending: deque = deque()
        nxt, in_flight = 0, None
        # e.g. the layer session: built while the run was planned (make_plan(warm=True)) or while the
        # first batch decodes
        warm = plan.warming if plan.warming is not None and worker.model is plan.model else assembler.submit(worker.warm)
        try:
            while nxt < len(batches) or pending:
                while nxt < len(batches) and len(pending) < ahead:
                    pending.append((batches[nxt], [pool.submit(worker.decode, it) for it in batches[nxt]]))
                    nxt += 1
                batch, futures = pending.popleft()
                decoded = [f.result() for f in futures]
                if warm is not None:
                    warm.result()
                    warm = None
                stage = worker.first(batch, decoded)
                fut = assembler.submit(worker.assemble, batch, decoded, stage)
                if in_flight is not None:
                    collect(*in_flight)
                in_flight = (batch, fut)
            if in_flight is not None:
                collect(*in_flight)
        except KeyboardInterrupt:
            for _, futures in pending:
                for f in futures:
                    f.cancel()
            if in_flight is not None:  # the batch being assembled: kept if it ends within a short grace
                try:
                    in_flight[1].result(timeout=CTRL_C_GRACE)
                    collect(*in_flight)
                except BaseException:  # noqa: BLE001 - too slow, failed, or a second Ctrl-C: dropped
                    pass
            writer.close()  # the part in flight lands whole
            plan.store.write(state["rows"], "local")  # keep what is finished
            raise
        except BaseException:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        finally:
            assembler.close()
    writer.close()
    plan.store.write(state["rows"], "local")


def _tables(plan, worker, tally, part_items, summary):
    rows, seen = Rows(), 0
    try:
        for ids, X in plan.table.chunks():
            left = [i for i, item in enumerate(ids) if any(item not in s for s in plan.skip.values())]
            summary.skipped += len(ids) - len(left)
            tally.bar.update(len(ids) - len(left))
            if left:
                done = worker.table([ids[i] for i in left], X[left], plan.table, plan.skip)
                rows.extend(done)
                tally.add(done.summary())
            seen += len(ids)
            if len(rows) >= part_items * len(worker.methods) * 16:  # table rows are small: bigger parts
                plan.store.write(rows, "local")
                rows = Rows()
    except (KeyboardInterrupt, OnnxaiError):  # e.g. a bad cell further down the table: keep the rows done
        plan.store.write(rows, "local")
        raise
    plan.store.write(rows, "local")
    if plan.total is None:
        tally.bar.total = seen
