"""The local engine: one process, one Model, pictures decoded in a thread pool while the model runs.

Pictures go in batches of ``batch_items``; the next batches are decoded (Pillow, resize, crop,
normalise: threads, most of it outside the GIL) while the current one is explained, and at most
``ahead`` batches wait decoded, so memory is bounded by the batch and part sizes, not by the data
set. Tables stream in row chunks. Rows are written as a part file every ``part_items`` items (and on
Ctrl-C, what is finished); one progress bar counts items, failures and items/s.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

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


def run_local(plan: Plan, progress: bool = True, batch_items: int | None = None, decode_threads: int = 2,
              part_items: int = 64, threads: int | None = None, ahead: int = 2) -> Summary:
    t0 = time.perf_counter()
    worker = Worker(plan.job, model=plan.model if threads is None else None, threads=threads)
    summary = Summary(skipped=plan.skipped, out=str(plan.store.out), engine="local")
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
    items = plan.items
    batches = [items[i:i + batch_items] for i in range(0, len(items), batch_items)]
    rows, in_part = Rows(), 0
    with ThreadPoolExecutor(max(1, decode_threads), thread_name_prefix="onnxai-decode") as pool:
        pending: deque = deque()
        nxt = 0
        try:
            while nxt < len(batches) or pending:
                while nxt < len(batches) and len(pending) < ahead:
                    pending.append((batches[nxt], [pool.submit(worker.decode, it) for it in batches[nxt]]))
                    nxt += 1
                batch, futures = pending.popleft()
                done = worker.pictures(batch, [f.result() for f in futures])
                rows.extend(done)
                in_part += len(batch)
                tally.add(done.summary())
                if in_part >= part_items:
                    plan.store.write(rows, "local")
                    rows, in_part = Rows(), 0
        except KeyboardInterrupt:
            for _, futures in pending:
                for f in futures:
                    f.cancel()
            plan.store.write(rows, "local")  # keep what is finished
            raise
    plan.store.write(rows, "local")


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
    except KeyboardInterrupt:
        plan.store.write(rows, "local")
        raise
    plan.store.write(rows, "local")
    if plan.total is None:
        tally.bar.total = seen
