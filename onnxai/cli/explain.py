"""``onnxai explain``: run methods on pictures and write the overlays, raw maps and facts (and a
montage, metrics and a report); on a table model, hand over to tables.explain_csv."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError, OnnxaiError
from ..safe_io import clean_label
from .common import handle_errors, method_names, model_options, note, open_model, split_model_kwargs
from .method_options import build_methods, method_options, param_option, pop_settings
from .outputs import check_outputs, class_part, unique_stems

TABLE_OPTIONS = ("rows", "background", "feature_names")


@click.command(epilog=(
    "Examples:\n\n"
    "  onnxai explain models/efficientnet_lite0.onnx samples/chelsea.png --method lime --out out/\n\n"
    "  onnxai explain models/efficientnet_lite0.onnx samples/*.png --method lime,occlusion --target top2\n\n"
    "  onnxai explain MODEL cat.jpg --method occlusion --window 32 --stride 8 --target 'tiger cat'\n\n"
    "  onnxai explain MODEL cat.jpg --method lime,rise --samples 500 --param rise.cells=6\n\n"
    "Each method option goes to every chosen method that takes that parameter (the methods are listed "
    "in brackets, with their defaults); one that none of them takes is an error. --param sets one "
    "method's parameter by its name."))
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--method", "-m", "methods", default="lime", show_default=True,
              help="lime, occlusion, kernel-shap, cam, grad-cam, score-cam, rise, a comma list of methods, or all.")
@click.option("--target", "-t", default="top1", show_default=True,
              help="Class to explain: top1, topK, an index, a label (e.g. 'tiger cat'), or a comma list.")
@click.option("--out", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the overlay PNG, the raw map (.npz) and the facts (.json).")
@click.option("--force", is_flag=True, help="Overwrite existing outputs (default: refuse and write nothing).")
@method_options
@param_option
@click.option("--show-top", type=click.IntRange(1), default=None,
              help="Maps over features (LIME, Kernel SHAP): also write the picture with only the K most important features visible.")
@click.option("--opacity", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Opacity of the map over the picture (0: picture only, 1: map only).")
@click.option("--alpha", "deprecated_alpha", type=click.FloatRange(0, 1), default=None, hidden=True,
              help="Deprecated spelling of --opacity.")
@click.option("--cmap", type=click.Choice(["jet", "viridis", "coolwarm"]), default=None,
              help="Colour map (default: coolwarm for signed maps, jet otherwise).")
@click.option("--mark-unsettled", is_flag=True,
              help="Sampled methods: grey and hatch the features whose sign the 95% interval does not settle.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--report", "write_report", is_flag=True,
              help="Also write OUT/report.html: the overlays side by side, top-5, parameters, timings (one self-contained file).")
@click.option("--metrics", "with_metrics", is_flag=True,
              help="Score every map (deletion/insertion AUC, average drop, increase in confidence; a random map as baseline).")
@click.option("--rows", default=None, help="Tables: rows of the CSV to explain, e.g. 0,5,9 or 3-7 (default all).")
@click.option("--background", default=None, type=click.Path(dir_okay=False),
              help="Tables: training rows (CSV) for the baseline (Kernel SHAP) or the sampling (LIME).")
@click.option("--feature-names", default=None, help="Tables: column names, a,b,c or a file (default: the CSV header).")
@click.option("--cropped", is_flag=True,
              help="The pictures already are the model's input (e.g. 224x224 crops): normalise them, do not "
                   "resize or crop them again.")
@model_options
@handle_errors
def explain(model_path, images, methods, target, out_dir, force, params, show_top, opacity, deprecated_alpha, cmap,
            mark_unsettled, no_progress, write_report, with_metrics, rows, background, feature_names, cropped, **kw):
    """Explain the model's decision on each IMAGE and write pictures and maps to --out.

    For each image, method and target class it writes NAME_METHOD_INDEX_CLASS.png (the map over the
    picture the model saw, with a colour bar), .npz (the raw map, segments, importance) and .json
    (target, score, parameters, timings). Existing files are never overwritten without --force.
    With several methods (a comma list, or "all") it also writes NAME_montage.png, every map side
    by side for each class; --report writes OUT/report.html and --metrics scores every map.
    """
    from .. import render
    from ..methods import masked_topk

    model_kw = split_model_kwargs(kw)
    settings = pop_settings(kw)
    blend = _opacity(opacity, deprecated_alpha)
    model = open_model(model_path, **model_kw)
    table_opts = dict(rows=rows, background=background, feature_names=feature_names)
    if not model.input.is_image:  # a table: CSV rows in, contributions (CSV/JSON) and bar/waterfall PNGs out
        from .tables import explain_csv

        for line in explain_csv(model, images, method_names(methods), settings, params, table_opts, target,
                                Path(out_dir), force):
            click.echo(line)
        return
    for key in TABLE_OPTIONS:
        if table_opts[key] is not None:
            raise InputError(f"--{key.replace('_', '-')} is for tabular models; {model_path} takes pictures")
    names = method_names(methods)
    method_objs = build_methods(names, settings, params, no_progress)
    out = Path(out_dir)
    report_path = out / "report.html"
    stems = dict(zip(images, unique_stems(images)))  # same-named pictures from different folders differ
    prepared = _first_pass(model, images, target, cropped)
    targets = {image: t for image, (t, _, _) in prepared.items()}
    plan = _planned_outputs(model, out, images, stems, targets, method_objs, show_top, report_path if write_report else None)
    check_outputs(out, plan, force)  # before the expensive part: every output and that --out is writable
    report = None
    if write_report:
        from ..report import Report

        report = Report(f"onnxai explain: {Path(model_path).name}", model=model,
                        params={"methods": names, "target": target, "opacity": blend, "cmap": cmap,
                                "images": list(images)})
    everything = []
    for image in images:
        stem = stems[image]
        shown = []
        for name, method in method_objs:
            try:
                _, x, crop = prepared[image]  # decoded and resized once, for every method
                result = method.explain_prepared(model, x, crop, target, str(image))
            except OnnxaiError as err:
                if "all" not in methods.lower().split(","):
                    raise
                click.echo(f"note: {image}: skipped {name}: {err}", err=True)  # --method all: run what can run
                continue
            expls = result if isinstance(result, list) else [result]
            for e in expls:
                base, files = _files(out, stem, name, e.target, e.label, show_top if e.segments is not None else None)
                draw = getattr(method, "picture", None) or render.explanation_panel  # a method may draw its own
                panel = (render.explanation_panel(e, alpha=blend, cmap=cmap, mark_unsettled=True) if mark_unsettled
                         and not getattr(method, "picture", None) else draw(e, alpha=blend, cmap=cmap))
                render.save_png(panel, files[0], force)
                e.extras.setdefault("provider", model.provider)  # the JSON says where it ran
                e.save(base, force)
                extra = ""
                if len(files) > 3:
                    render.save_png(masked_topk(e, show_top), files[3], force)
                    extra = f", {files[3].name}"
                facts = ", ".join(f"{k}={v:.3f}" for k, v in e.extras.items() if isinstance(v, float))
                if "layer" in e.extras:  # CAM methods: say which layer was read, and how it was chosen
                    facts = ", ".join([f"layer {e.extras['layer']} ({e.extras.get('layer_choice', '')})"]
                                      + [f"gradient={v}" for v in [e.extras.get("gradient")] if v]
                                      + ([facts] if facts else []))
                if e.extras.get("stopped"):  # num_samples="auto": how many samples, and why it stopped
                    rule = e.extras.get("stop_rule", "error")
                    figure = e.extras.get("rank_disagreement", e.extras.get("error_ratio", float("nan")))
                    what = "rank disagreement" if rule.startswith("ranks") else "error"
                    facts += (f"; {e.extras.get('num_samples')} samples ({e.extras['stopped']}, {what} {figure:.3f} of "
                              f"tolerance {e.extras.get('tolerance')}{', error floor' if 'floor' in rule else ''})")
                if e.extras.get("score_note"):
                    facts += f"; {e.extras['score_note']}"
                click.echo(f"{image}: {name} for {clean_label(e.label)!r} (class {e.target}, p={e.score:.3f}) in "
                           f"{e.timings.get('total', 0):.2f}s{'; ' + facts if facts else ''} -> {files[0]}{extra}")
            shown.extend(expls)
        _explain_extras(model, image, shown, out / f"{stem}_montage.png" if len(method_objs) > 1 else None,
                        with_metrics and not no_progress, with_metrics, report, blend, cmap, force)
        everything.extend(shown)
    if report is not None:
        for name, method in method_objs:  # a method may add its own section (nbdt: the browsable tree)
            if hasattr(method, "report_section") and any(e.method == method.name for e in everything):
                method.report_section(report, model, [e for e in everything if e.method == method.name])
        report.save(report_path, force)
        click.echo(f"report -> {report_path}")


def _first_pass(model, images, target, cropped) -> dict:
    """{image: ([class indices], x, crop)}: each picture prepared once, and its targets from one forward
    pass, before any method runs."""
    from ..methods.base import resolve_targets

    out = {}
    for image in images:
        x, crop = model.prepare(image, cropped=cropped)
        out[image] = (resolve_targets(model, model.scores(x)[0], target)[0], x, crop)
    return out


def _files(out: Path, stem: str, method: str, index: int, label: str, top: int | None) -> tuple[Path, list[Path]]:
    """(base, [png, npz, json(, top png)]) of one map: OUT/STEM_METHOD_INDEX_LABEL.*"""
    base = out / f"{stem}_{method}_{class_part(index, label)}"
    files = [base.with_name(base.name + s) for s in (".png", ".npz", ".json")]
    if top:
        files.append(base.with_name(f"{base.name}_top{top}.png"))
    return base, files


def _planned_outputs(model, out, images, stems, targets, method_objs, show_top, report_path) -> list[Path]:
    from ..methods.superpixels import SuperpixelMethod

    plan = [report_path] if report_path is not None else []
    for image in images:
        for name, method in method_objs:
            top = show_top if isinstance(method, SuperpixelMethod) else None
            for t in dict.fromkeys(targets[image]):
                plan += _files(out, stems[image], name, t, model.label(t), top)[1]
        if len(method_objs) > 1:
            plan.append(out / f"{stems[image]}_montage.png")
    return plan


def _opacity(opacity, deprecated_alpha) -> float:
    """--opacity, or the deprecated --alpha (with a note)."""
    if deprecated_alpha is None:
        return opacity
    note("--alpha is deprecated; use --opacity")
    given = click.get_current_context().get_parameter_source("opacity") != click.core.ParameterSource.DEFAULT
    if given and opacity != deprecated_alpha:
        raise InputError(f"--alpha {deprecated_alpha} and --opacity {opacity} disagree; give only --opacity")
    return deprecated_alpha


def _explain_extras(model, image, shown, montage, progress, with_metrics, report, blend, cmap, force):
    """After all methods ran on one picture: the montage (to the path ``montage``), the metrics and the
    report section."""
    from .. import render

    if not shown:
        return
    if montage is not None:
        path = montage
        render.save_png(render.explanations_montage(shown, alpha=blend, cmap=cmap), path, force)
        click.echo(f"{image}: montage of {len({e.method for e in shown})} methods x "
                   f"{len({e.target for e in shown})} classes -> {path}")
    scores = {}
    if with_metrics or report is not None:
        from .. import metrics

        prep = metrics.Prepared.from_crop(model, shown[0].image)
    if with_metrics:
        for k, e in enumerate(shown, 1):  # deletion and insertion curves: many forward passes each
            if progress:
                note(f"{image}: scoring {e.method} for {clean_label(e.label)!r} ({k}/{len(shown)} maps, then a random map)")
            scores[(e.method, e.target)] = metrics.score_explanation(model, e, image=prep)
        for t in dict.fromkeys(e.target for e in shown):
            scores[(metrics.RANDOM, t)] = metrics.score_map(model, prep, metrics.random_map(prep.crop.shape[:2]), t,
                                                            method=metrics.RANDOM)
        for (m, t), s in scores.items():
            click.echo(f"{image}: {m} for {clean_label(s.label)!r}: deletion AUC {s.deletion:.3f} (lower is better), insertion AUC "
                       f"{s.insertion:.3f} (higher), average drop {s.ad:.1f}%, increase {s.ic:.0f}%")
    if report is not None:
        report.add_picture(str(image), prep.crop, model.top(prep.probs, 5), shown, scores, alpha=blend, cmap=cmap)


