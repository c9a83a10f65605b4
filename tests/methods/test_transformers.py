"""Transformers end to end: a tiny ViT (class token, pre-norm blocks, final LayerNorm, linear head on the
class token, as HF's) trained with torch for a few steps on pictures whose class is decided by one known
region, exported to ONNX; Grad-CAM and Score-CAM at layer="auto" put most of their top pixels there."""

from __future__ import annotations

import numpy as np
import pytest

import onnxai
import torch_models


@pytest.fixture(scope="module")
def region_vit(tmp_path_factory):
    pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("vit") / "region_vit.onnx"
    acc = torch_models.train_region_vit(path, steps=150)
    assert acc > 0.95, acc
    return onnxai.Model(path, providers="cpu", preprocess={"resize": 0, "crop": 32, "mean": [0.0] * 3,
                                                           "std": [1.0] * 3, "scale": 1 / 255})


def _inside():
    y0, y1, x0, x1 = torch_models.REGION
    inside = np.zeros((32, 32), bool)
    inside[y0:y1, x0:x1] = True
    return inside


@pytest.mark.parametrize("method", ["grad-cam", "score-cam"])
def test_vit_maps_find_the_region(region_vit, method):
    x, y = torch_models.region_pictures(16, seed=5)
    inside = _inside()
    shares = []
    for i in np.flatnonzero(y == 1)[:4]:
        e = onnxai.explain(region_vit, (x[i] * 255).clip(0, 255).astype(np.uint8), method=method, target=1)
        assert e.extras["layer_layout"] == "tokens" and e.extras["prefix_tokens"] == 1
        assert e.raw_map.shape == (4, 4) and np.isfinite(e.map).all()
        top = e.map >= np.quantile(e.map, 0.75)  # the region is a quarter of the picture
        shares.append(inside[top].mean())
    assert np.mean(shares) > 0.6 and sum(s > 0.5 for s in shares) >= 3, shares


def test_vit_auto_layers(region_vit):
    """Grad-CAM: the last block's first LayerNorm (pytorch-grad-cam's blocks[-1].norm1), the residual
    stream held at its value; Score-CAM: the residual stream after the last block, before the final norm."""
    picture = (torch_models.region_pictures(1, seed=3)[0][0] * 255).astype(np.uint8)
    gc = onnxai.GradCAM().explain(region_vit, picture)
    assert gc.extras["layer"] == "/blocks/blocks.1/n1/LayerNormalization_output_0", gc.extras["layer"]
    assert gc.extras["held"] == ["/blocks/blocks.0/Add_1_output_0"] and gc.extras["gradient"] == "central"
    assert "LayerNorm opening the last block" in gc.extras["layer_choice"]
    sc = onnxai.ScoreCAM().explain(region_vit, picture)
    assert sc.extras["layer"] == "/blocks/blocks.1/Add_1_output_0"
    assert "before the final norm" in sc.extras["layer_choice"]
    # the stream after the last block reaches the output only through the class token: Grad-CAM's map is 0
    flat = onnxai.GradCAM(layer="/blocks/blocks.1/Add_1_output_0").explain(region_vit, picture)
    assert np.abs(flat.raw_map).max() == 0.0
