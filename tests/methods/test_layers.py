"""Choosing and reading a layer (onnxai/methods/layers.py): close names for unknown layers, element-wise
segments between a layer and the head, token layers read as maps."""

from __future__ import annotations

import numpy as np
import pytest

import onnxai
from onnx_models import cam_net, cam_picture as picture, cam_setup as setup, token_net
from onnxai.errors import LayerError
from onnxai.methods.layers import LayerView, elementwise_segment


def test_unknown_layer_names_close_ones():
    model, *_ = setup()
    for cls in (onnxai.CAM, onnxai.GradCAM, onnxai.ScoreCAM):
        with pytest.raises(LayerError, match="close names: act"):
            cls(layer="actt").explain(model, picture())


def test_elementwise_segment_detection():
    m, _ = cam_net(tail="sigmoid")
    assert elementwise_segment(m, "act", "feat", (1, 4, 6, 6))
    assert elementwise_segment(m, "conv", "feat", (1, 4, 6, 6))
    m, _ = cam_net(tail="conv")
    assert not elementwise_segment(m, "act", "feat", (1, 4, 6, 6))


def test_tokens_are_reshaped_to_maps():
    m = token_net()
    model = onnxai.Model(m, providers="cpu", preprocess={"resize": 8, "crop": 8})
    pic = picture(8)
    # Grad-CAM on the tokens equals Grad-CAM on the same numbers as an NCHW map
    on_tokens = onnxai.GradCAM(layer="pre_tokens").explain(model, pic, target=1)
    on_maps = onnxai.GradCAM(layer="patches").explain(model, pic, target=1)
    assert on_tokens.extras["layer_layout"] == "tokens" and on_tokens.extras["prefix_tokens"] == 0
    assert on_tokens.raw_map.shape == (4, 4)
    np.testing.assert_allclose(on_tokens.raw_map, on_maps.raw_map, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(on_tokens.importance, on_maps.importance, rtol=1e-4, atol=1e-7)
    sc_t = onnxai.ScoreCAM(layer="pre_tokens").explain(model, pic, target=1)
    sc_m = onnxai.ScoreCAM(layer="patches").explain(model, pic, target=1)
    np.testing.assert_allclose(sc_t.map, sc_m.map, rtol=1e-5, atol=1e-6)


def test_layer_view_prefix_tokens():
    rng = np.random.default_rng(0)
    act = rng.standard_normal((2, 17, 5)).astype(np.float32)  # class token + 4x4 patches
    view = LayerView.of(act, "t")
    assert (view.kind, view.prefix, view.grid) == ("tokens", 1, (4, 4))
    maps = view.maps(act)
    assert maps.shape == (2, 5, 4, 4)
    np.testing.assert_array_equal(maps[1, 3, 2, 1], act[1, 1 + 2 * 4 + 1, 3])
    np.testing.assert_array_equal(view.to_layer(maps, act[:1]), np.concatenate([act[:1, :1].repeat(2, 0), act[:, 1:]], 1))
    assert LayerView.of(act[:, 1:], "t").prefix == 0
    assert LayerView.of(act[:, 1:], "t", prefix_tokens=0).grid == (4, 4)
    with pytest.raises(LayerError, match="prefix_tokens"):
        LayerView.of(act[:, 2:], "t")
    with pytest.raises(LayerError, match="spatial"):
        LayerView.of(act[:, 0], "t")
