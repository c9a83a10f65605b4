"""heads.find_linear_head on the heads other exporters write: pooled class maps (SqueezeNet), a
full-window AveragePool, ReduceMean, pass-through ops in between; refusals where CAM is not defined."""

from __future__ import annotations

import numpy as np
import pytest

import onnxai
import onnx_models
from onnxai import heads
from onnxai.errors import LayerError


@pytest.mark.parametrize("pool", ["gap", "avgpool", "reducemean"])
def test_pooled_class_maps_are_an_identity_head(pool):
    m, _ = onnx_models.class_map_net(size=8, classes=4, pool=pool)
    head = heads.find_linear_head(m)
    assert head.features == "maps" and head.channel_axis == 1
    np.testing.assert_array_equal(head.weight, np.eye(4))
    np.testing.assert_array_equal(head.bias, 0)
    assert any("class maps" in n for n in head.nodes)


@pytest.mark.parametrize("pool", ["gap", "avgpool"])
def test_cam_of_pooled_class_maps_is_the_class_map(pool):
    m, _ = onnx_models.class_map_net(size=8, classes=4, pool=pool)
    model = onnxai.load(m, preprocess=onnxai.Preprocess(resize=None, crop=8), providers="cpu")
    picture = (np.random.default_rng(2).random((8, 8, 3)) * 255).astype(np.uint8)
    x, _ = model.prepare(picture, cropped=True)
    acts, _ = model.activations(x, ["maps"])
    for e in onnxai.CAM().explain(model, picture, target="top2", cropped=True):
        np.testing.assert_allclose(e.raw_map, acts["maps"][0, e.target], atol=1e-6)  # same grid: no resize
        assert abs(e.extras["logit"] - model.scores(x, "logits")[0, e.target]) < 1e-5  # mean of the map = score
    g = onnxai.GradCAM().explain(model, picture, target=1, cropped=True)
    assert g.extras["gradient"] == "exact"
    np.testing.assert_allclose(g.raw_map, np.maximum(acts["maps"][0, 1], 0) / 64, atol=1e-6)


def test_a_pooling_that_keeps_a_grid_or_a_layernorm_is_refused():
    with pytest.raises(LayerError, match=r"AveragePool .*not the whole map"):
        heads.find_linear_head(onnx_models.partial_avgpool_net())
    with pytest.raises(LayerError, match="LayerNormalization.*Grad-CAM or Score-CAM"):
        heads.find_linear_head(onnx_models.layernorm_head_net())
