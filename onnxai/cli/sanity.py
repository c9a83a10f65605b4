"""``onnxai sanity``: the model-randomisation check of one method (Adebayo et al. 2018): the rank
correlation of its map with the maps on ever more randomised weights, a PNG of the steps and a JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError
from ..safe_io import clean_label, write_text
from .common import handle_errors, method_names, model_options, open_model, slug, split_model_kwargs
from .method_options import build_methods, method_options, param_option, pop_settings
from .outputs import check_outputs


@click.command(epilog=(
    "Examples:\n\n"
    "  onnxai sanity models/efficientnet_lite0.onnx samples/chelsea.png --method occlusion\n\n"
    "  onnxai sanity MODEL cat.png --method lime --steps 4 --param lime.num_samples=300\n\n"
    "--seed seeds the method (as in explain); the random weights' seed is --weights-seed."))
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("image", type=click.Path())
@click.option("--method", "-m", "method", default="occlusion", show_default=True, help="The method to check.")
@click.option("--target", "-t", default="top1", show_default=True, help="Class explained (kept fixed along the cascade).")
@click.option("--steps", type=click.IntRange(1), default=None,
              help="How many randomisation steps (default: every layer up to 8, else 8 evenly spaced).")
@method_options
@param_option
@click.option("--weights-seed", type=int, default=0, show_default=True,
              help="Seed of the random weights (was --seed before --seed meant the method's seed).")
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="The check passes when the fully randomised map's |Spearman| is below this (0..1).")
@click.option("--out", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for NAME_sanity_METHOD.png (the maps per step) and .json.")
@click.option("--force", is_flag=True, help="Overwrite existing results.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@model_options
@handle_errors
def sanity(model_path, image, method, target, steps, params, weights_seed, threshold, out_dir, force, no_progress,
           **kw):
    """Model-randomisation sanity check (Adebayo et al. 2018): re-initialise the weights layer by layer
    from the output backwards, explain again, and print the rank correlation with the original map.

    A method that explains the model must decorrelate; one that does not is not looking at the model.
    """
    from .. import render
    from ..kernels._checks import check_number
    from ..sanity import SanityResult, cascading_randomisation

    threshold = check_number(threshold, "--threshold", 0, 1)  # before the cascade runs
    model = open_model(model_path, **split_model_kwargs(kw))
    model.require_image()
    names = method_names(method)
    if len(names) != 1:
        raise InputError("sanity checks one method at a time; give --method NAME")
    (mname, obj), = build_methods(names, pop_settings(kw), params, no_progress)
    out = Path(out_dir)
    base = out / f"{Path(image).stem}_sanity_{slug(mname)}"
    png, js = base.with_name(base.name + ".png"), base.with_name(base.name + ".json")
    model.prepare(image)  # the picture reads, before the outputs are checked and the cascade runs
    check_outputs(out, [png, js], force)
    click.echo(f"{image}: {mname}; the rank correlation with the original map as layers are randomised:")
    click.echo(SanityResult.TABLE_HEADER)

    def said(s):  # the table, one row as each step is ready (printed once)
        click.echo(SanityResult.table_row(s))

    res = cascading_randomisation(model, image, obj, target=target, steps=steps, seed=weights_seed, on_step=said)
    click.echo(f"explained {clean_label(res.label)!r} (class {res.target}); {len(res.layers)} layers with weights")
    ok = res.passed(threshold)
    click.echo(f"{'PASSED' if ok else 'FAILED'}: fully randomised |spearman| = {abs(res.steps[-1].spearman):.3f} "
               f"({'<' if ok else '>='} {threshold})")
    render.save_png(res.montage(), png, force)
    payload = res.to_json()
    payload["threshold"] = threshold
    payload["passed"] = ok
    payload["provider"] = model.provider
    write_text(js, json.dumps(payload, indent=1), force)
    click.echo(f"wrote {png}, {js}")
