"""``onnxai evaluate``: faithfulness of methods over pictures (deletion and insertion AUC, average
drop, increase in confidence) as a table, CSV, JSON, mean curves and optionally an HTML report."""

from __future__ import annotations

from pathlib import Path

import click

from .common import handle_errors, method_names, model_options, open_model, split_model_kwargs
from .method_options import build_methods, method_options, param_option, pop_settings
from .outputs import check_outputs


@click.command(epilog=(
    "Examples:\n\n"
    "  onnxai evaluate models/efficientnet_lite0.onnx samples/*.png --methods lime,occlusion\n\n"
    "  onnxai evaluate MODEL a.png b.png --methods all --param lime.num_samples=500 --step 448 --out eval\n\n"
    "--seed seeds the methods (as in explain); the random map's seed is --baseline-seed."))
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--methods", "-m", "methods", default="lime,occlusion", show_default=True,
              help="Comma list of methods, or all. A random map is always scored as a baseline.")
@click.option("--target", "-t", default="top1", show_default=True, help="Class explained on each picture: top1, an index or a label.")
@click.option("--step", type=click.IntRange(1), default=None, help="Pixels per deletion/insertion step (default: one row, e.g. 224).")
@click.option("--substrate", default="zero", show_default=True, help="What deleted pixels show: zero (the model-space zero: the data set mean colour for mean/std models), black, mean, blur, a grey value.")
@click.option("--blur-sigma", type=float, default=5.0, show_default=True, help="Insertion starts from the picture blurred this much (pixels).")
@method_options
@param_option
@click.option("--baseline-seed", type=int, default=0, show_default=True,
              help="Seed of the random-map baseline (was --seed before --seed meant the methods' seed).")
@click.option("--out", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False), help="Folder for the results.")
@click.option("--name", default="evaluation", show_default=True, help="Base name of OUT/NAME.csv, .json, _curves.png (and .html).")
@click.option("--report", "write_report", is_flag=True, help="Also write OUT/NAME.html with the table, curves and every map.")
@click.option("--force", is_flag=True, help="Overwrite existing results.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@model_options
@handle_errors
def evaluate(model_path, images, methods, target, step, substrate, blur_sigma, params, baseline_seed, out_dir, name,
             write_report, force, no_progress, **kw):
    """Faithfulness of methods over pictures: deletion and insertion AUC, average drop, increase in confidence.

    Prints mean ± std over the pictures per method (and for a random map), with the seconds each
    method took per picture, and writes OUT/NAME.csv (one row per picture and method), OUT/NAME.json
    (with every curve) and OUT/NAME_curves.png (mean curves).
    """
    from .. import metrics, render

    model = open_model(model_path, **split_model_kwargs(kw))
    model.require_image()
    names = method_names(methods)
    objs = build_methods(names, pop_settings(kw), params, no_progress)
    out = Path(out_dir)
    paths = [out / f"{name}.csv", out / f"{name}.json", out / f"{name}_curves.png"] + ([out / f"{name}.html"] if write_report else [])
    for image in images:  # every picture reads, before the outputs are checked and the methods run
        model.prepare(image)
    check_outputs(out, paths, force)

    def said(s):
        click.echo(f"{s.image}: {s.method:<12} deletion {s.deletion:.3f}  insertion {s.insertion:.3f}  AD {s.ad:5.1f}  "
                   f"IC {s.ic:3.0f}  ({s.seconds:.2f}s)", err=True)

    ev = metrics.evaluate(model, list(images), dict(objs), target=target, step=step, substrate=substrate,
                          blur_sigma=blur_sigma, seed=baseline_seed, on_score=said,
                          progress=False if no_progress else None)
    ev.params["model"] = str(model_path)
    ev.params["provider"] = model.provider
    click.echo(ev.table())
    ev.save(out / name, force)
    curves = render.evaluation_curves(ev)
    render.save_png(curves, paths[2], force)
    if write_report:
        from ..report import Report

        rep = Report(f"onnxai evaluate: {Path(model_path).name}", model=model, params=ev.params)
        rep.add_evaluation(ev, curves)
        for image in images:
            ex = [e for e in ev.explanations if e.source == str(image)]
            if ex:
                prep = metrics.prepare(model, image)
                sc = {(s.method, s.target): s for s in ev.scores if s.image == str(image)}
                rep.add_picture(str(image), prep.crop, model.top(prep.probs, 5), ex, sc)
        rep.save(paths[3], force)
    click.echo("wrote " + ", ".join(str(p) for p in paths))
