"""Which tensors read as maps over the picture (onnxai/grids.py), on the hand-built exporter-shaped graphs
of tests/onnx_models.py and on the shipped model: the layout from the graph, the shape as a check, and the
sweep: every layer marked usable gives Grad-CAM a map on the expected grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import onnxai
import onnx_models
from onnx_models import EXPORTER_SHAPED, exporter_model
from onnxai import grids

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "efficientnet_lite0.onnx"


def _layers(model):
    return {l.name: l for l in model.layers()}


def test_reading_rules_on_shapes():
    # with the graph's evidence: the grid must be > 1 on both sides and in the picture's aspect
    assert grids.read((1, 32, 8, 8), "nchw", (16, 16)).grid == (8, 8)
    assert not grids.read((1, 1, 1, 320), "nhwc", (224, 224)).usable  # timm ConvNeXt's head LayerNorm
    # without: only a whole-stride division of the input grid, and exactly one layout
    r = grids.read((1, 32, 8, 8), None, (16, 16))
    assert (r.layout, r.grid) == ("nchw", (8, 8))
    assert "channel_axis" in grids.read((1, 8, 8, 8), None, (16, 16)).why
    for attention in [(1, 197, 12, 64), (1, 12, 197, 197), (1, 17, 2, 4), (1, 2, 17, 17)]:
        assert not grids.read(attention, None, (224, 224) if 197 in attention else (16, 16)).usable, attention
    tokens = grids.read((1, 197, 768), None, (224, 224))
    assert (tokens.layout, tokens.prefix, tokens.grid) == ("tokens", 1, (14, 14))
    assert grids.read((1, 198, 384), None, (224, 224)).prefix == 2  # DeiT: class + distillation tokens
    assert grids.read((1, 12 * 16, 64), None, (96, 128)).grid == (12, 16)  # a non-square picture


def test_auto_skips_the_convnext_head_layernorm():
    """timm ConvNeXt: GAP -> LayerNorm2d (1x1x1xC) -> fc; auto used to pick the 1x1x1xC tensor."""
    model = exporter_model("convnext")
    layers = _layers(model)
    assert not layers["head_norm"].spatial and "1x1" in layers["head_norm"].reading.why
    choice = onnxai.methods.layers.resolve_layer(model, "auto")
    assert choice.name == "stage" and "NCHW, 4x4 grid" in choice.how
    e = onnxai.GradCAM().explain(model, onnx_models.cam_picture(16))
    assert e.raw_map.shape == (4, 4) and e.extras["layer_grid"] == [4, 4]
    assert e.extras["layer_choice"].startswith("auto: the last map over the picture's grid")


def test_auto_skips_attention_internal_tensors_of_a_vit():
    """HF ViT: auto used to pick a (B, T, heads, d) tensor; it reads the token stream now."""
    model = exporter_model("vit")
    layers = _layers(model)
    for name in ("q_heads", "ctx_heads", "q_t", "k_t", "attn"):
        assert not layers[name].spatial, name
    choice = onnxai.methods.layers.resolve_layer(model, "auto")
    # after the attention only per-token ops lead to the class token: there the patch tokens do not reach
    # the output (zero gradients), so auto reads the stream entering the attention
    assert choice.name == "tokens0" and "tokens (1 in front), 4x4 grid" in choice.how
    assert "patch tokens reach the output" in choice.how
    for name, sees in [("tokens0", True), ("resid", False), ("final_norm", False)]:
        assert onnxai.grids.sees_patches(model.proto, name, 1, ["logits"]) is sees, name
    assert onnxai.grids.residual_add(model.proto, "resid") and not onnxai.grids.residual_add(model.proto, "tokens0")
    sc = onnxai.ScoreCAM().explain(model, onnx_models.cam_picture(16))
    assert sc.extras["layer_layout"] == "tokens" and sc.extras["prefix_tokens"] == 1 and sc.raw_map.shape == (4, 4)
    with pytest.raises(onnxai.LayerError, match="not read as maps.*channel_axis"):
        onnxai.ScoreCAM(layer="q_heads").explain(model, onnx_models.cam_picture(16))


def test_auto_errors_when_no_tensor_is_a_map():
    """A picture classifier with no map inside (Flatten -> Gemm): auto says so instead of picking one."""
    from onnx import TensorProto, helper, numpy_helper

    F = np.random.default_rng(0).standard_normal((3, 3 * 8 * 8)).astype(np.float32)
    m = onnx_models._finish(
        [helper.make_node("Flatten", ["input"], ["flat"], axis=1), helper.make_node("Gemm", ["flat", "F"], ["logits"], transB=1)],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])], [numpy_helper.from_array(F, "F")])
    model = onnxai.Model(m, providers="cpu", preprocess={"resize": 0, "crop": 8})
    with pytest.raises(onnxai.LayerError, match="found no tensor that is a map over the picture's grid"):
        onnxai.GradCAM().explain(model, onnx_models.cam_picture(8))


@pytest.mark.parametrize("head", [True, False])
def test_tf2onnx_inner_nchw_layer_behind_an_nhwc_input(head):
    """tf2onnx keeps inner tensors NCHW behind an NHWC input: 1x32x8x8 is 32 maps of 8x8, not 8 of 32x8."""
    model = exporter_model("tf2onnx" if head else "tf2onnx_no_head")
    pic = onnx_models.cam_picture(16)
    on_nchw = onnxai.GradCAM(layer="act").explain(model, pic, target=1)
    assert on_nchw.extras["layer_layout"] == "nchw" and on_nchw.raw_map.shape == (8, 8)
    on_nhwc = onnxai.GradCAM(layer="act_nhwc").explain(model, pic, target=1)
    assert on_nhwc.extras["layer_layout"] == "nhwc"
    # the same numbers either side of the Transpose: the same channel weights and map
    np.testing.assert_allclose(on_nchw.importance, on_nhwc.importance, rtol=2e-3, atol=1e-3 * np.abs(on_nhwc.importance).max())
    np.testing.assert_allclose(on_nchw.raw_map, on_nhwc.raw_map, rtol=2e-3, atol=1e-3 * on_nhwc.raw_map.max())


def test_an_ambiguous_layer_is_refused_naming_channel_axis():
    model = exporter_model("ambiguous")
    pic = onnx_models.cam_picture(16)
    with pytest.raises(onnxai.LayerError, match=r"ambiguous.*channel_axis=1 or 3 \(--channel-axis\)"):
        onnxai.GradCAM(layer="mixed").explain(model, pic)
    given = onnxai.GradCAM(layer="mixed", channel_axis=1).explain(model, pic, target=0)
    auto = onnxai.GradCAM(layer="act").explain(model, pic, target=0)  # the head says axis 1
    assert given.raw_map.shape == auto.raw_map.shape == (8, 8)
    assert "channels on axis 1, 8x8 grid" in onnxai.methods.layers.resolve_layer(model, "auto").how


# --------------------------------------------------------------------------- the sweep


@pytest.mark.parametrize("name", sorted(EXPORTER_SHAPED))
def test_sweep_every_usable_layer_of_the_exporter_shaped_graphs(name):
    """Every layer marked usable: Grad-CAM (where the layer cuts the graph; Score-CAM where a skip
    connection bypasses it) returns a map on the layer's grid, the picture's size."""
    model = exporter_model(name)
    pic = onnx_models.cam_picture(EXPORTER_SHAPED[name][1])
    usable = [l for l in model.layers() if l.spatial]
    assert usable
    assert any(l.reading.grid == EXPORTER_SHAPED[name][2] for l in usable)
    for l in usable:
        cls = onnxai.GradCAM if l.reading.cuts else onnxai.ScoreCAM
        e = cls(layer=l.name).explain(model, pic, target=0)
        assert e.raw_map.shape == l.reading.grid, (name, l.name)
        assert e.map.shape == pic.shape[:2] and np.isfinite(e.map).all()


@pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped model is not in this checkout")
def test_sweep_the_shipped_model():
    """efficientnet_lite0: every 4-D tensor is read (all NCHW, from Conv), the head's features are 7x7,
    and Grad-CAM gives the reading's grid on a handful of usable layers spread over the depth (all of
    them would take minutes: central differences are 2K tail runs per layer)."""
    model = onnxai.load(SHIPPED, providers="cpu")
    layers = model.layers()
    usable = [l for l in layers if l.spatial]
    assert all(l.reading.layout == "nchw" for l in usable)
    assert [l.name for l in layers if l.shape and len(l.shape) == 4 and not l.spatial] == ["mean"]  # the 1x1 pool
    choice = onnxai.methods.layers.resolve_layer(model, "auto")
    assert choice.how == "auto: the features the linear head pools, channels on axis 1, 7x7 grid"
    few = [l for l in usable if l.reading.cuts and l.shape[1] <= 40]  # few channels: 2K tail runs stay cheap
    pick = [few[i] for i in np.linspace(0, len(few) - 1, 4).astype(int)] + [layers[[l.name for l in layers].index(choice.name)]]
    assert len({l.reading.grid for l in pick}) >= 3  # spread over the depth: 112x112 ... 7x7
    pic = onnxai.load_image(Path(__file__).resolve().parent.parent / "samples" / "chelsea.png")
    for l in pick:
        e = onnxai.GradCAM(layer=l.name).explain(model, pic)
        assert e.raw_map.shape == l.reading.grid == tuple(l.shape[2:]), l.name
