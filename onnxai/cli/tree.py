"""``onnxai tree``: the induced NBDT hierarchy of a model's linear head, written as JSON (read back by
``--method nbdt --param nbdt.hierarchy=FILE``), a picture of its top levels, optionally a browsable
HTML page, and optionally embedded in a copy of the model's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError
from ..safe_io import check_destinations
from .common import handle_errors, model_options, open_model


@click.command(epilog=(
    "Examples:\n\n"
    "  onnxai tree models/efficientnet_lite0.onnx --out out\n\n"
    "  onnxai tree MODEL --names names.txt --levels 5 --report --out out\n\n"
    "  onnxai tree MODEL --embed model_with_tree.onnx\n\n"
    "A names file renames nodes: a JSON object or lines 'KEY<TAB>name' / 'KEY: name', where KEY is a node "
    "id (#N in the picture) or class labels joined by '|' (the smallest node that holds them all)."))
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--out", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for MODEL_tree.json and MODEL_tree.png.")
@click.option("--levels", type=click.IntRange(1, 8), default=4, show_default=True,
              help="Levels of the tree drawn in the picture.")
@click.option("--names", "names_file", type=click.Path(dir_okay=False), default=None,
              help="Node names to use instead of the generated ones (see below).")
@click.option("--linkage", type=click.Choice(["ward", "average", "complete", "single"]), default="ward",
              show_default=True, help="Agglomerative clustering linkage (the paper and the nbdt package: ward).")
@click.option("--raw-rows", is_flag=True,
              help="Cluster the head's raw class vectors (the nbdt package's code) instead of the normalised "
                   "ones (the paper).")
@click.option("--report", "write_report", is_flag=True, help="Also write MODEL_tree.html, the tree as nested sections.")
@click.option("--embed", "embed_path", type=click.Path(dir_okay=False), default=None,
              help="Also write a copy of MODEL with the hierarchy in its metadata (read by --method nbdt).")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@model_options
@handle_errors
def tree(model_path, out_dir, levels, names_file, linkage, raw_rows, write_report, embed_path, force, **kw):
    """Write the decision tree that NBDT induces from MODEL's linear head: JSON, a picture, a report."""
    from .. import render
    from ..methods.nbdt import NBDT
    from ..methods.nbdt_tree import METADATA_KEY
    from ..render_tree import tree_picture

    model = open_model(model_path, **kw)
    stem = Path(model_path).stem
    out = Path(out_dir)
    files = [out / f"{stem}_tree.json", out / f"{stem}_tree.png"] + ([out / f"{stem}_tree.html"] if write_report else [])
    if embed_path:
        files.append(Path(embed_path))
        if Path(embed_path).resolve() == Path(model_path).resolve():
            raise InputError("--embed names the input model; write the copy somewhere else")
    check_destinations(files, force)  # before any work: existing files (without --force) and links refused
    method = NBDT(names=names_file, linkage=linkage, normalise=not raw_rows)
    h = method.tree(model).h
    h.save(files[0], force)
    title = f"{stem}: induced hierarchy ({linkage}, {'raw' if raw_rows else 'normalised'} class vectors), top {levels} levels"
    render.save_png(tree_picture(h, levels=levels, title=title), files[1], force)
    depth = h.depths()
    a, b = h.kids(h.root)
    click.echo(f"{model_path}: {h.num_classes} classes, depth {int(depth.min())}..{int(depth.max())} "
               f"(mean {depth.mean():.1f}); the root splits {len(h.leaves(a))} ({h.names[a]}) from "
               f"{len(h.leaves(b))} ({h.names[b]})")
    click.echo(f"wrote {files[0]}, {files[1]}")
    if write_report:
        from ..report import Report

        rep = Report(f"onnxai tree: {Path(model_path).name}", model=model,
                     params={"linkage": linkage, "normalise": not raw_rows, "names": names_file})
        rep.add_tree(h)
        rep.save(files[2], force)
        click.echo(f"report -> {files[2]}")
    if embed_path:
        from onnx import helper

        from ..graph import read_model
        from .model_commands import write_model

        proto = read_model(model_path)  # the file as it is, not the session's copy
        props = {p.key: p.value for p in proto.metadata_props}
        props[METADATA_KEY] = json.dumps(h.to_dict())
        helper.set_model_props(proto, props)
        write_model(proto, Path(embed_path), force)
        click.echo(f"wrote {embed_path} (the hierarchy in its metadata, key {METADATA_KEY})")
