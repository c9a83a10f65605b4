"""The ``onnxai`` command line: the click group ``main`` (the console entry point) and where each
command lives.

    model_commands  inspect, predict, patch, export
    explain         explain (pictures; tables through tables.py)
    dataset         explain-dataset (a folder, a list or a table into a Parquet store; local or Ray)
    evaluate        evaluate (faithfulness metrics over pictures)
    sanity          sanity (the model-randomisation check)
    tree            tree (the induced NBDT hierarchy of a linear head)
    common          errors -> one line and an exit status, model options, names
    method_options  the options that set method parameters, routed by the methods' signatures
"""

from __future__ import annotations

import click

from .common import State
from .dataset import explain_dataset
from .evaluate import evaluate
from .explain import explain
from .model_commands import export, inspect, patch, predict
from .sanity import sanity
from .tree import tree


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
    State.debug = debug
    if quiet:
        from .._log import set_quiet
        set_quiet(True)


def _quiet(ctx, param, value):
    if value:
        from .._log import set_quiet
        set_quiet(True)


SHORT_HELP = {  # the command list of `onnxai --help`: whole sentences, never cut
    "inspect": "Show a model's inputs, outputs, preprocessing, labels, layers.",
    "predict": "Top classes with probabilities for pictures.",
    "patch": "Copy a model with inner tensors exposed as outputs.",
    "export": "Export a torchvision classifier to ONNX.",
    "explain": "Explain the model's decisions on pictures or table rows.",
    "evaluate": "Score the faithfulness of methods over pictures.",
    "sanity": "Check a method against randomised weights.",
    "tree": "The decision tree induced from the linear head (NBDT).",
    "explain-dataset": "Explain a whole data set into a resumable Parquet store.",
}

for _command in (inspect, predict, patch, export, explain, explain_dataset, evaluate, sanity, tree):
    _command.short_help = SHORT_HELP[_command.name]
    if not any("--quiet" in p.opts for p in _command.params):  # -q works after the command name too
        _command.params.append(click.Option(["--quiet", "-q"], is_flag=True, expose_value=False, is_eager=True,
                                            callback=_quiet, help="No notes or progress bars on stderr."))
    main.add_command(_command)


def evaluation_curves(ev):
    """Kept for callers of ``onnxai.cli.evaluation_curves``; the plot lives in render."""
    from ..render import evaluation_curves as curves

    return curves(ev)
