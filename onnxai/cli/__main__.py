"""python -m onnxai.cli: the same as the onnxai command."""

from . import main

main(prog_name="onnxai")
