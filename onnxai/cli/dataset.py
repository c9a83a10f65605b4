"""``onnxai explain-dataset``: explain every picture of a folder / list, or every row of a table, into a
Parquet store; resumable, locally or on a Ray cluster (``--engine ray``)."""

from __future__ import annotations

import sys

import click

from ..errors import InputError
from .common import handle_errors, model_options, note, split_model_kwargs
from .method_options import method_options, param_option, params_for, pop_settings


@click.command("explain-dataset", epilog=(
    "Examples:\n\n"
    "  onnxai explain-dataset MODEL pictures/ --methods grad-cam,lime --out results/\n\n"
    "  onnxai explain-dataset MODEL list.csv --methods lime --samples 250 --out results/\n\n"
    "  onnxai explain-dataset MODEL rows.parquet --background train.csv --out results/\n\n"
    "  onnxai explain-dataset MODEL pictures/ --engine ray --address auto --workers 8 --out /shared/results\n\n"
    "Rerunning the same command skips the items already in the store (same method, parameters and "
    "model); --force starts over; --retry-errors runs the failed items again. Read the store with pandas.read_parquet(OUT) or "
    "ray.data.read_parquet(OUT); onnxai.dataset.map_array(row) gives a row's map (a CAM's map is stored at "
    "its layer's grid, 7x7 say, and scaled up there bit for bit as the method does)."))
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("source", metavar="SOURCE", type=click.Path())
@click.option("--methods", "--method", "-m", "methods", default=None,
              help="Comma list of methods (default: grad-cam for pictures, kernel-shap for tables); "
              "'predict' stores the prediction (class probabilities) without a map.")
@click.option("--target", "-t", default=None, help="Class to explain (default: each item's predicted class, or a "
              "list's 'target' column).")
@click.option("--out", "out_dir", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Folder of the Parquet store (part-*.parquet, _params.json).")
@click.option("--background", default=None, type=click.Path(dir_okay=False),
              help="Tables: training rows (CSV or Parquet), summarised once for Kernel SHAP.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray: address of a running cluster (auto, HOST:PORT); "
              "default: start a local one.")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Ray: actors, one model each.")
@click.option("--threads-per-worker", type=click.IntRange(1), default=1, show_default=True,
              help="Ray: CPUs per actor = onnxruntime intra-op threads.")
@click.option("--gpus-per-worker", type=click.FloatRange(0), default=0, show_default=True,
              help="Ray: GPUs per actor (with --providers cuda).")
@click.option("--batch-items", type=click.IntRange(1), default=None,
              help="Pictures per batch (their first forward pass runs as one batch; default --batch-size).")
@click.option("--decode-threads", type=click.IntRange(1), default=2, show_default=True,
              help="Local: threads decoding pictures while the model runs.")
@click.option("--force", is_flag=True, help="Start over: remove the store's part files (and its _params.json) first.")
@click.option("--retry-errors", is_flag=True, help="Run again the items whose rows (these methods and parameters) "
              "are errors, e.g. after fixing the pictures: their error rows are removed first, the rest stays.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when an item failed, in this run or in an "
              "earlier one whose error rows are still in the store (--retry-errors runs those again).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--pictures", is_flag=True, help="Also write PNG overlays to OUT/_pictures and OUT/_index.html.")
@param_option
@method_options
@model_options
@handle_errors
def explain_dataset(model_path, source, methods, target, out_dir, background, engine, address, workers,
                    threads_per_worker, gpus_per_worker, batch_items, decode_threads, force, retry_errors, strict,
                    no_progress, pictures, params, **kw):
    """Explain every item of SOURCE (a folder of pictures, a .txt/.csv list of paths, or a
    .parquet/.csv table for a table model) into a Parquet store under --out: one row per item,
    method and target class, failed items as rows with status "error". Ends with a summary line."""
    from .. import dataset
    from ..model import load
    from ..preprocess import parse_floats

    model_kw = split_model_kwargs(kw)
    settings = pop_settings(kw)
    load_kw = dict(providers=model_kw["providers"], batch_size=model_kw["batch_size"], output=model_kw["output_name"],
                   labels=model_kw["labels_file"], threads=model_kw["threads"],
                   preprocess=dict(resize=model_kw["resize"], crop=model_kw["crop"],
                                   mean=parse_floats(model_kw["mean"], what="--mean"),
                                   std=parse_floats(model_kw["std"], what="--std"), scale=model_kw["scale"],
                                   channels=model_kw["channels"], layout=model_kw["layout"]))
    from pathlib import Path

    if not Path(model_path).is_file():
        raise InputError(f"model file not found: {model_path}")
    sha = dataset.plan.hash_model(model_path)  # beside the load, at no cost
    model = load(model_path, **load_kw)
    names = methods or ("grad-cam" if model.input.is_image else "kernel-shap")
    name_list = [n.strip().lower().replace("_", "-") for n in names.split(",") if n.strip()]
    plan = dataset.make_plan(model, source, name_list, out_dir, target=target,
                             params={p: v for p, (_, v) in settings.items()},
                             method_params=params_for(name_list, params), background=background, force=force,
                             pictures=pictures, model_options={k: v for k, v in load_kw.items() if v is not None},
                             warm=engine == "local", retry_errors=retry_errors, model_sha=sha)
    if plan.retried:
        note(f"--retry-errors: {plan.retried} error row(s) removed; those items run again")
    if plan.missing:
        note(f"{len(plan.missing)} listed file(s) do not exist (first: {plan.missing[0]}); they are stored "
             "as errors")
    opts = dict(progress=not no_progress, batch_items=batch_items)
    if engine == "ray":
        opts.update(workers=workers, threads=threads_per_worker, address=address, gpus_per_worker=gpus_per_worker)
    else:
        opts.update(decode_threads=decode_threads)
    summary = dataset.run(plan, engine, **opts)
    if pictures:
        from ..dataset.index import write_index

        write_index(plan.store.out)
    if summary.errors:
        item, method, message = summary.errors[0]
        note(f"first failure: {item} ({method}): {message}")
    click.echo(summary.line())
    if strict and (summary.failed or summary.failed_before):
        sys.exit(1)
