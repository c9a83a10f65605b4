"""Pictures into models whose input is not float32 (uint8 with the preprocessing inside the graph,
float16, float64): every perturbation method composites in float32 and casts to the model's dtype
(rounding and clipping for integers); the maps equal those of the same model with a float32 input
where the composites are representable."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

import onnxai
import onnx_models

RAW = onnxai.Preprocess(resize=None, crop=16, mean=(0.0,) * 3, std=(1.0,) * 3, scale=1.0)  # raw 0..255 pixels
PICTURE = (np.random.default_rng(5).random((16, 16, 3)) * 255).astype(np.uint8)
METHODS = {
    "occlusion": dict(window=4, stride=4, fill="black"),
    "lime": dict(num_samples=40, num_features=9, segmentation="grid", surrogate="ridge", fill="black"),
    "kernel-shap": dict(num_samples=40, num_features=9, segmentation="grid", fill="black"),
    "feature-ablation": dict(num_features=9, segmentation="grid", fill="black"),
    "rise": dict(num_samples=30, cells=4, fill="black"),
    "score-cam": dict(fill="black"),
}


def models(elem_type):
    proto, _ = onnx_models.conv_net(size=16, channels=4, classes=3, seed=1)
    typed = onnx_models.with_input_dtype(proto, elem_type, scale=1 / 255)
    plain = onnx_models.with_input_dtype(proto, TensorProto.FLOAT, scale=1 / 255)
    return (onnxai.load(typed, preprocess=RAW, providers="cpu"), onnxai.load(plain, preprocess=RAW, providers="cpu"))


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("elem_type", [TensorProto.UINT8, TensorProto.FLOAT16, TensorProto.DOUBLE])
def test_every_perturbation_method_runs_on_other_input_dtypes(method, elem_type):
    typed, plain = models(elem_type)
    e = onnxai.make_method(method, **METHODS[method]).explain(typed, PICTURE, target=0, cropped=True)
    again = onnxai.make_method(method, **METHODS[method]).explain(typed, PICTURE, target=0, cropped=True)
    ref = onnxai.make_method(method, **METHODS[method]).explain(plain, PICTURE, target=0, cropped=True)
    assert e.map.shape == (16, 16) and np.isfinite(e.map).all()
    np.testing.assert_array_equal(e.map, again.map)
    if elem_type == TensorProto.FLOAT16:  # the input itself is rounded to half precision
        assert np.corrcoef(e.map.ravel(), ref.map.ravel())[0, 1] > 0.99
    elif method in ("rise", "score-cam"):  # soft masks: uint8 rounds every composite to a pixel value
        tol = 1e-5 if elem_type == TensorProto.DOUBLE else 0.05 * np.abs(ref.map).max()
        np.testing.assert_allclose(e.map, ref.map, atol=tol)
    else:  # binary masks over a black fill: every composite is a whole pixel value, so the same scores
        np.testing.assert_allclose(e.map, ref.map, atol=1e-6)


def test_uint8_composites_are_rounded_and_clipped():
    from onnxai.engine import cast_into

    src = np.array([-3.2, 0.4, 0.5, 1.5, 254.6, 300.0], np.float32)
    dst = np.empty(6, np.uint8)
    cast_into(src.copy(), dst)
    np.testing.assert_array_equal(dst, [0, 0, 0, 2, 255, 255])  # round half to even, then the range
