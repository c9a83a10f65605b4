"""The model matrix (issue 14): every method in METHODS on every model either works (a finite map of the
picture's size, the same map again for the same seed) or gives its documented one-line refusal. The
models are built here: hand-built graphs of each case (tests/onnx_models.py) and, where torch (and
transformers) are installed, torchvision SqueezeNet 1.1 / MobileNetV3-small and HF ViT / DeiT exported
with random weights, once per session. EXPECTED says which: "ok" or a piece of the refusal."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

import onnx_models
import onnxai
import torch_models
from onnxai.errors import OnnxaiError
from onnxai.methods import METHODS, make_method

# small budgets: the matrix checks that a method runs and repeats, the method tests check the values
PARAMS = {
    "lime": dict(num_samples=24, num_features=8, seed=0),
    "occlusion": dict(window=8, stride=8),
    "rise": dict(num_samples=16, cells=4, seed=0),
    "kernel-shap": dict(num_samples=24, num_features=8, seed=0),
    "feature-ablation": dict(num_features=8),
    "permutation-shap": dict(num_samples=1, num_features=8, seed=0),
    "lime-tabular": dict(num_samples=50, seed=0),
}

NO_HEAD = "no linear head on global average pooling"
PICTURE_ONLY = "this command needs an image model"
TABLE_ONLY = "explains table rows"
PICTURE = {m: "ok" for m in METHODS} | {"lime-tabular": TABLE_ONLY}
NBDT_NO_HEAD = "NBDT needs a linear classifier on pooled features"
NO_CAM = PICTURE | {"cam": NO_HEAD, "nbdt": NBDT_NO_HEAD}

EXPECTED = {
    # hand-built graphs: conv_net; uint8 / float16 inputs (preprocessing in the graph); SqueezeNet's class
    # maps under GlobalAveragePool / a full-window AveragePool; a Shape(input)-fed Reshape before the head;
    # the exporter shapes of issue 15 (timm ConvNeXt, HF ViT, tf2onnx); a table model
    "conv": PICTURE,
    "uint8": PICTURE,
    "float16": PICTURE,
    "class_map_gap": PICTURE,
    "class_map_avgpool": PICTURE,
    "shape_reshape": NO_CAM,
    "convnext_like": NO_CAM,
    "vit_like": NO_CAM,
    "tf2onnx_like": PICTURE,
    "normalises_input": PICTURE,  # NHWC, Keras-style Rescaling + Normalization inside (read from the graph)
    # quantized by onnxruntime's quantize_static: QDQ (Q/DQ pairs around float ops), QOperator (uint8 ops)
    "qdq": PICTURE,
    "qoperator": PICTURE | {"cam": NO_HEAD, "nbdt": NBDT_NO_HEAD, "grad-cam": "a quantized model's activation"},
    "table": {m: PICTURE_ONLY for m in METHODS} | {"kernel-shap": "ok", "lime-tabular": "ok"},
    # exported with torch (random weights)
    "squeezenet1_1": PICTURE,
    "mobilenet_v3_small": NO_CAM,
    "hf_vit": NO_CAM,
    "hf_deit": NO_CAM,
}


def _hand_built(name):
    m = {
        "conv": lambda: onnx_models.conv_net(size=16)[0],
        "uint8": lambda: onnx_models.with_input_dtype(onnx_models.conv_net(size=16)[0], TensorProto.UINT8, 1 / 255),
        "float16": lambda: onnx_models.with_input_dtype(onnx_models.conv_net(size=16)[0], TensorProto.FLOAT16),
        "class_map_gap": lambda: onnx_models.class_map_net(size=16)[0],
        "class_map_avgpool": lambda: onnx_models.class_map_net(size=16, pool="avgpool")[0],
        "shape_reshape": lambda: onnx_models.shape_reshape_net(size=16)[0],
        "convnext_like": onnx_models.convnext_like_net,
        "vit_like": onnx_models.vit_like_net,
        "tf2onnx_like": onnx_models.tf2onnx_like_net,
        "normalises_input": lambda: onnx_models.normalising_net(
            [("Mul", 1 / 255, False), ("Sub", np.array([0.485, 0.456, 0.406]), False),
             ("Div", np.array([0.229, 0.224, 0.225]), False)], layout="NHWC", size=16)[0],
    }[name]()
    return m


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """name -> path of the torch exports (built once per session; absent when torch is missing)."""
    out = {}
    try:
        import torch  # noqa: F401
    except ImportError:
        return out
    d = tmp_path_factory.mktemp("matrix")
    for arch in ("squeezenet1_1", "mobilenet_v3_small"):
        out[arch] = torch_models.torchvision_onnx(arch, d / f"{arch}.onnx")
    try:
        import transformers  # noqa: F401
    except ImportError:
        return out
    out["hf_vit"] = torch_models.hf_vit_onnx(d / "hf_vit.onnx")
    out["hf_deit"] = torch_models.hf_vit_onnx(d / "hf_deit.onnx", distilled=True)
    return out


_models: dict = {}


def _model(name, exported, tmp_path_factory):
    if name not in _models:
        if name in ("squeezenet1_1", "mobilenet_v3_small", "hf_vit", "hf_deit"):
            if name not in exported:
                pytest.skip(f"{name}: needs torch{' and transformers' if 'hf' in name else ''}")
            size = 64 if name in ("squeezenet1_1", "mobilenet_v3_small") else 32
            _models[name] = onnxai.Model(exported[name], providers="cpu", preprocess={"resize": 0, "crop": size})
        elif name == "table":
            _models[name] = onnx_models.mlp_model(6)
        elif name in ("qdq", "qoperator"):
            path = onnx_models.quantize(onnx_models.conv_net(size=16, softmax=True)[0], tmp_path_factory.mktemp(name),
                                        fmt={"qdq": "QDQ", "qoperator": "QOperator"}[name])
            _models[name] = onnxai.Model(path, providers="cpu", preprocess={"resize": 0, "crop": 16})
        else:
            size = 16
            _models[name] = onnxai.Model(_hand_built(name), providers="cpu", preprocess={"resize": 0, "crop": size})
            if name == "normalises_input":  # fed raw pixels: the graph's own normalisation was read
                assert _models[name].preprocess.scale == 1.0 and _models[name].preprocess.mean == (0.0,) * 3
    return _models[name]


def _run(model, method):
    params = dict(PARAMS.get(method, {}))
    if not model.input.is_image:
        X = np.random.default_rng(0).standard_normal((20, 6))
        if method == "kernel-shap":
            params = dict(num_samples=40, seed=0, background=X[:8])
            return make_method(method, **params).explain(model, X[10:11]).values
        if method == "lime-tabular":
            return make_method(method, background=X[:8], **params).explain(model, X[10:11]).values
        return make_method(method, **params).explain(model, X[10:11]).map
    size = model.input.hw[0] or 16
    picture = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)
    if method == "lime-tabular":
        return make_method(method, background=np.zeros((2, 3)), **params).explain(model, picture).map
    e = make_method(method, **params).explain(model, picture)
    assert e.map.shape == (size, size), e.map.shape
    return e.map


CASES = [(m, k) for m in EXPECTED for k in METHODS]


@pytest.mark.parametrize("name,method", CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_matrix(name, method, exported, tmp_path_factory):
    model = _model(name, exported, tmp_path_factory)
    expected = EXPECTED[name][method]
    if expected == "ok":
        a, b = _run(model, method), _run(model, method)
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
    else:
        with pytest.raises(OnnxaiError) as e:
            _run(model, method)
        msg = str(e.value)
        assert expected in msg and "\n" not in msg, msg


def test_matrix_covers_every_method():
    assert all(set(row) == set(METHODS) for row in EXPECTED.values())
