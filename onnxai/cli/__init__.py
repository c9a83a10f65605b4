"""The ``onnxai`` command line: the click group ``main`` (the console entry point) and where each
command lives.

    model_commands  inspect, predict, patch, export
    explain         explain (pictures; tables through tables.py)
    dataset         explain-dataset (a folder, a list or a table into a Parquet store; local or Ray)
    evaluate        evaluate (faithfulness metrics over pictures)
    sanity          sanity (the model-randomisation check)
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


for _command in (inspect, predict, patch, export, explain, explain_dataset, evaluate, sanity):
    main.add_command(_command)


def evaluation_curves(ev):
    """Kept for callers of ``onnxai.cli.evaluation_curves``; the plot lives in render."""
    from ..render import evaluation_curves as curves

    return curves(ev)
