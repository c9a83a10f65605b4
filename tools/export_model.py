"""Export a torchvision classifier (or efficientnet_lite0) to an ONNX file onnxai can explain.

    python tools/export_model.py resnet18 --random-weights -o resnet18.onnx
    python tools/export_model.py efficientnet_lite0 -o models/efficientnet_lite0.onnx

A thin command line over onnxai.export.export_model; needs the extra: pip install 'onnxai[export]'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Let the script run from a checkout without installing onnxai.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from onnxai.errors import OnnxaiError  # noqa: E402
from onnxai.export import export_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export a torchvision classification model (or efficientnet_lite0) to ONNX, "
        "with onnxai's preprocessing, labels and provenance in the file's metadata."
    )
    parser.add_argument("arch", help="torchvision model name (resnet18, vit_b_16, ...) or efficientnet_lite0")
    parser.add_argument("-o", "--output", required=True, type=Path, help="the .onnx file to write")
    parser.add_argument("--weights", type=Path, help="a state_dict .pth file (default: torch's local hub cache)")
    parser.add_argument("--random-weights", action="store_true", help="use seeded random weights (for tests; predictions mean nothing)")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--expose", action="append", default=[], metavar="TENSOR",
                        help="add an intermediate tensor as an extra output (repeatable)")
    parser.add_argument("--image-size", type=int, help="square input side (default: the weights' crop size)")
    parser.add_argument("--no-check", action="store_true", help="skip the torch vs onnxruntime comparison")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    try:
        export_model(
            args.arch,
            args.output,
            weights=args.weights,
            random_weights=args.random_weights,
            opset=args.opset,
            expose=args.expose,
            image_size=args.image_size,
            check=not args.no_check,
            force=args.force,
        )
    except OnnxaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
