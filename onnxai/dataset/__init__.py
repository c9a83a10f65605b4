"""Explaining a whole data set: streamed, resumable, written to a Parquet store; local or on Ray.

    sources.py   folders, lists of pictures, Parquet/CSV tables in row chunks; per-item seeds
    store.py     the Parquet store: schema, part files written atomically, what is already done
    worker.py    the work on one batch (the same locally and in every Ray actor)
    plan.py      checks everything before touching the store, then what is left to do; Summary
    local.py     one process: decoding threads overlapping inference, one progress bar
    ray_engine.py  Ray Data map_batches over an actor pool (the optional ``onnxai[ray]`` extra)

``run(plan, engine=...)`` runs a plan; ``api.explain_dataset`` is the one-call entry point.
"""

from .plan import Plan, Summary, make_plan
from .sources import item_seed
from .store import Store, map_array


def run(plan: Plan, engine: str = "local", **options) -> Summary:
    """Run a plan with the "local" or "ray" engine (options: see local.run_local / ray_engine.run_ray)."""
    if engine == "local":
        from .local import run_local

        return run_local(plan, **options)
    if engine == "ray":
        from .ray_engine import run_ray

        return run_ray(plan, **options)
    from ..errors import InputError

    raise InputError(f"engine must be 'local' or 'ray', not {engine!r}")


__all__ = ["Plan", "Store", "Summary", "item_seed", "make_plan", "map_array", "run"]
