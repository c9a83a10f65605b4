"""CAM, Grad-CAM, Score-CAM and RISE on hand-built ONNX models, against numpy computations.

The models: Conv(3->K, 3x3, stride 2) -> Relu ("act") -> [tail] -> GlobalAveragePool -> Flatten ->
Gemm -> [Softmax], where the tail between "act" and the pooling is nothing, a Sigmoid (non-linear but
per element) or a 1x1 Conv + Relu (mixes channels), so Grad-CAM's three gradient paths are checked
against analytic gradients computed here.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxai
import tiny
from onnxai import kernels
from onnxai.errors import InputError, LayerError
from onnxai.methods.layers import LayerView, elementwise_segment, resolve_layer
from onnxai.methods.rise import GridMasks

SIZE = 12


# --------------------------------------------------------------------------- models and references


def cam_net(size=SIZE, channels=4, classes=5, softmax=False, tail="none", seed=0, dead=()):
    """(ModelProto, params). ``dead``: {channel: bias} channels whose conv weights are 0 (constant maps)."""
    rng = np.random.default_rng(seed)
    p = {
        "W": rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.5,
        "B": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "W2": rng.standard_normal((channels, channels, 1, 1)).astype(np.float32) * 0.7,
        "B2": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "F": rng.standard_normal((classes, channels)).astype(np.float32),
        "c": rng.standard_normal(classes).astype(np.float32),
        "tail": tail,
    }
    for k, b in dict(dead).items():
        p["W"][k] = 0.0
        p["B"][k] = b
    inits = [numpy_helper.from_array(p[n], n) for n in ("W", "B", "F", "c")]
    nodes = [
        helper.make_node("Conv", ["input", "W", "B"], ["conv"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["conv"], ["act"]),
    ]
    feat = "act"
    if tail == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["act"], ["feat"]))
        feat = "feat"
    elif tail == "conv":
        inits += [numpy_helper.from_array(p["W2"], "W2"), numpy_helper.from_array(p["B2"], "B2")]
        nodes += [helper.make_node("Conv", ["act", "W2", "B2"], ["conv2"]), helper.make_node("Relu", ["conv2"], ["feat"])]
        feat = "feat"
    nodes += [
        helper.make_node("GlobalAveragePool", [feat], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "F", "c"], ["logits"], transB=1),
    ]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out = "probs"
    g = helper.make_graph(nodes, "cam_net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, classes])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m, p


def conv_s2(x, W, B):
    """3x3 conv, pad 1, stride 2, float64: (n, 3, H, W) -> (n, K, ceil(H/2), ceil(W/2))."""
    n, _, h, w = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ho, wo = (h + 1) // 2, (w + 1) // 2
    out = np.zeros((n, W.shape[0], ho, wo))
    for dy in range(3):
        for dx in range(3):
            patch = xp[:, :, dy:dy + 2 * ho:2, dx:dx + 2 * wo:2]
            out += np.einsum("nchw,kc->nkhw", patch, W[:, :, dy, dx].astype(np.float64))
    return out + p_b(B)


def p_b(B):
    return B.astype(np.float64)[None, :, None, None]


def forward(x, p):
    """numpy forward: (act, feat, logits), float64."""
    act = np.maximum(conv_s2(x, p["W"], p["B"]), 0)
    if p["tail"] == "sigmoid":
        feat = 1 / (1 + np.exp(-act))
    elif p["tail"] == "conv":
        pre = np.einsum("nkhw,mk->nmhw", act, p["W2"][:, :, 0, 0].astype(np.float64)) + p_b(p["B2"])
        feat = np.maximum(pre, 0)
    else:
        feat = act
    logits = feat.mean(axis=(2, 3)) @ p["F"].T.astype(np.float64) + p["c"]
    return act, feat, logits


def analytic_alpha(act, p, c):
    """alpha_k = (1/Z) sum_ij d logit_c / d act_kij for the three tails. act: (K, h, w)."""
    K, h, w = act.shape
    Z = h * w
    F = p["F"].astype(np.float64)
    if p["tail"] == "none":
        return F[c] / Z
    if p["tail"] == "sigmoid":
        s = 1 / (1 + np.exp(-act))
        return F[c] / Z / Z * (s * (1 - s)).sum(axis=(1, 2))
    W2 = p["W2"][:, :, 0, 0].astype(np.float64)
    pre = np.einsum("khw,mk->mhw", act, W2) + p["B2"][:, None, None]
    on = (pre > 0).astype(np.float64)  # (M, h, w)
    # d logit / d act_kij = sum_m F[c, m] / Z * on_mij * W2[m, k]
    grad = np.einsum("m,mhw,mk->khw", F[c] / Z, on, W2)
    return grad.sum(axis=(1, 2)) / Z


def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def picture(size=SIZE, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype(np.uint8)


def load(m):
    return onnxai.Model(m, providers="cpu", preprocess={"resize": SIZE, "crop": SIZE})


def setup(**kw):
    m, p = cam_net(**kw)
    model = load(m)
    x, crop = model.prepare(picture())
    return model, p, x, crop


def up(a, align=False):
    return kernels.resize(np.asarray(a, np.float64), SIZE, SIZE, method="bilinear", align_corners=align)


# --------------------------------------------------------------------------- CAM


@pytest.mark.parametrize("softmax", [False, True])
def test_cam_equals_numpy(softmax):
    model, p, x, crop = setup(softmax=softmax)
    act, _, logits = forward(x, p)
    res = onnxai.CAM().explain(model, picture(), target="top2")
    assert [e.target for e in res] == list(np.argsort(-logits[0])[:2])
    for e in res:
        low = np.tensordot(p["F"][e.target].astype(np.float64), act[0], axes=1)
        np.testing.assert_allclose(e.raw_map, low, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(e.map, up(low), rtol=1e-5, atol=1e-5)
        assert e.map.shape == (SIZE, SIZE) and e.map.dtype == np.float32
        assert e.extras["layer"] == "act" and e.extras["layer_choice"].startswith("auto")
        # CAM's mean plus the bias is the logit
        assert e.extras["logit"] == pytest.approx(logits[0, e.target], rel=1e-5, abs=1e-5)


def test_cam_matmul_head_and_nhwc():
    m, p = tiny.nhwc_reduce_net(size=6, channels=4, classes=3)
    model = onnxai.Model(m, providers="cpu", preprocess={"resize": 6, "crop": 6, "layout": "NHWC"})
    pic = picture(6)
    x, _ = model.prepare(pic)
    act = np.maximum(x[0].astype(np.float64) @ p["P"], 0)  # (h, w, K)
    e = onnxai.CAM().explain(model, pic, target=1)
    np.testing.assert_allclose(e.raw_map, act @ p["F"][1], rtol=1e-5, atol=1e-5)
    assert e.extras["layer_layout"] == "nhwc"


def test_cam_without_a_linear_head_raises_what_it_found():
    m, _ = tiny.no_pool_net()
    model = onnxai.Model(m, providers="cpu", preprocess={"resize": 4, "crop": 4})
    with pytest.raises(LayerError, match="no linear head.*Relu .relu. feeds the linear layer"):
        onnxai.CAM().explain(model, picture(4))
    # the other CAMs fall back to the last spatial activation
    assert resolve_layer(model, "auto").name == "act"
    e = onnxai.GradCAM().explain(model, picture(4))
    assert e.extras["layer"] == "act" and "no linear head" in e.extras["layer_choice"]
    assert e.extras["gradient"] == "central"


def test_cam_refuses_a_layer_other_than_the_heads_input():
    model, *_ = setup(tail="conv")
    with pytest.raises(LayerError, match="feat"):
        onnxai.CAM(layer="act").explain(model, picture())


def test_unknown_layer_names_close_ones():
    model, *_ = setup()
    for cls in (onnxai.CAM, onnxai.GradCAM, onnxai.ScoreCAM):
        with pytest.raises(LayerError, match="close names: act"):
            cls(layer="actt").explain(model, picture())


# --------------------------------------------------------------------------- Grad-CAM


@pytest.mark.parametrize("softmax", [False, True])
def test_grad_cam_exact_is_relu_cam_over_z_and_central_differences_agree(softmax):
    model, p, x, crop = setup(softmax=softmax)
    act, _, logits = forward(x, p)
    t = int(np.argmax(logits[0]))
    exact = onnxai.GradCAM().explain(model, picture(), target=t)
    central = onnxai.GradCAM(gradient="central").explain(model, picture(), target=t)
    assert exact.extras["gradient"] == "exact" and central.extras["gradient"] == "central"
    assert central.extras["tail_runs"] == 2 * act.shape[1]
    assert exact.extras["score"].startswith("logits")
    if softmax:
        assert "Softmax" in exact.extras["score"]
    Z = act.shape[2] * act.shape[3]
    low = np.maximum(np.tensordot(p["F"][t].astype(np.float64), act[0], axes=1), 0) / Z
    np.testing.assert_allclose(exact.raw_map, low, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(exact.importance, p["F"][t] / Z, rtol=1e-6)
    np.testing.assert_allclose(central.importance, exact.importance, rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(central.map, exact.map, rtol=1e-2, atol=1e-3 * exact.map.max())


@pytest.mark.parametrize("tail,paths", [("sigmoid", ("elementwise", "central")), ("conv", ("central",))])
def test_grad_cam_on_a_nonlinear_tail_matches_the_analytic_gradient(tail, paths):
    model, p, x, crop = setup(tail=tail, softmax=True)
    act, _, logits = forward(x, p)
    t = int(np.argmax(logits[0]))
    alpha = analytic_alpha(act[0], p, t)
    expected = np.maximum(np.tensordot(alpha, act[0], axes=1), 0)
    for path in paths:
        e = onnxai.GradCAM(layer="act", gradient=path).explain(model, picture(), target=t)
        assert e.extras["gradient"] == path
        np.testing.assert_allclose(e.importance, alpha, rtol=5e-3, atol=1e-3 * np.abs(alpha).max())
        np.testing.assert_allclose(e.raw_map, expected, rtol=1e-2, atol=1e-3 * expected.max())
        np.testing.assert_allclose(e.map, np.maximum(up(expected), 0), rtol=1e-2, atol=1e-3 * expected.max())
    assert onnxai.GradCAM(layer="act").explain(model, picture(), target=t).extras["gradient"] == paths[0]
    if tail == "conv":
        with pytest.raises(LayerError, match="per-element"):
            onnxai.GradCAM(layer="act", gradient="elementwise").explain(model, picture())
        with pytest.raises(LayerError, match="linear head's input"):
            onnxai.GradCAM(layer="act", gradient="exact").explain(model, picture())


def test_elementwise_segment_detection():
    m, _ = cam_net(tail="sigmoid")
    assert elementwise_segment(m, "act", "feat", (1, 4, 6, 6))
    assert elementwise_segment(m, "conv", "feat", (1, 4, 6, 6))
    m, _ = cam_net(tail="conv")
    assert not elementwise_segment(m, "act", "feat", (1, 4, 6, 6))


def token_net(size=8, channels=3, classes=4, seed=0):
    """Conv 2x2/2 patches -> Reshape/Transpose to tokens (N, 16, C) -> Relu ("tokens") -> ReduceMean over
    tokens -> Gemm. The tokens are the conv output ("patches", N x C x 4 x 4) rearranged, no prefix."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((channels, 3, 2, 2)).astype(np.float32)
    F = rng.standard_normal((classes, channels)).astype(np.float32)
    c = rng.standard_normal(classes).astype(np.float32)
    side = size // 2
    nodes = [
        helper.make_node("Conv", ["input", "W"], ["patches"], strides=[2, 2], kernel_shape=[2, 2]),
        helper.make_node("Reshape", ["patches", "shape"], ["flat_patches"]),
        helper.make_node("Transpose", ["flat_patches"], ["pre_tokens"], perm=[0, 2, 1]),
        helper.make_node("Sigmoid", ["pre_tokens"], ["tokens"]),
        helper.make_node("ReduceMean", ["tokens", "axes"], ["pooled"], keepdims=0),
        helper.make_node("Gemm", ["pooled", "F", "c"], ["logits"], transB=1),
    ]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(F, "F"), numpy_helper.from_array(c, "c"),
             numpy_helper.from_array(np.array([0, channels, side * side], np.int64), "shape"),
             numpy_helper.from_array(np.array([1], np.int64), "axes")]
    g = helper.make_graph(nodes, "tokens", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


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


# --------------------------------------------------------------------------- Score-CAM


def score_cam_reference(model, p, x, t, weighting="score", score="probabilities", align=False):
    """The authors' loop (haofanwang/Score-CAM) in numpy, or pytorch-grad-cam's ScoreCAM, zero baseline."""
    act = forward(x, p)[0][0]
    K = act.shape[0]
    s = np.empty(K)
    maps = []
    for k in range(K):
        u = up(act[k], align).astype(np.float64)
        if act[k].max() == act[k].min():
            u[:] = 0
        else:
            u = (u - u.min()) / (u.max() - u.min())
        logits = forward(x * u[None, None].astype(np.float32), p)[2][0]
        s[k] = (np_softmax(logits) if score == "probabilities" else logits)[t]
        maps.append(u)
    const = np.array([act[k].max() == act[k].min() for k in range(K)])
    if weighting == "score":
        w = np.where(const, 0, s)  # the authors' loop skips constant channels
    else:
        w = np_softmax(s)
    low = np.tensordot(w, act, axes=1)
    if weighting == "softmax":  # pytorch-grad-cam clips the low-resolution map, then resizes it
        low = np.maximum(low, 0)
    return np.maximum(up(low), 0), w


@pytest.mark.parametrize("preset", ["authors", "pytorch-grad-cam"])
def test_score_cam_equals_the_reference_loop(preset):
    model, p, x, crop = setup(softmax=True, channels=6)
    t = int(np.argmax(forward(x, p)[2][0]))
    e = onnxai.ScoreCAM(preset=preset).explain(model, picture(), target=t)
    kw = dict(weighting="score", score="probabilities") if preset == "authors" else \
        dict(weighting="softmax", score="logits", align=True)
    ref, w = score_cam_reference(model, p, x, t, **kw)
    np.testing.assert_allclose(e.importance, w, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(e.map, ref, rtol=1e-4, atol=1e-5 * ref.max())
    assert e.extras["forward_passes"] == 6


def test_score_cam_skips_constant_channels_exactly():
    # channel 1 is dead (all 0 after the Relu), channel 3 is constant 0.7: neither is pushed through the model
    model, p, x, crop = setup(channels=6, softmax=True, dead={1: -1.0, 3: 0.7})
    act = forward(x, p)[0][0]
    assert act[1].max() == act[1].min() == 0 and act[3].max() == act[3].min() == np.float32(0.7)
    t = int(np.argmax(forward(x, p)[2][0]))
    for preset in ("authors", "paper", "pytorch-grad-cam"):
        skip = onnxai.ScoreCAM(preset=preset).explain(model, picture(), target=t)
        full = onnxai.ScoreCAM(preset=preset, skip_constant=False).explain(model, picture(), target=t)
        assert skip.extras["forward_passes"] == 4 and full.extras["forward_passes"] == 6
        assert skip.extras["constant_channels"] == 2
        np.testing.assert_allclose(skip.importance, full.importance, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(skip.map, full.map, rtol=1e-6, atol=1e-7 * max(full.map.max(), 1e-12))
    # under pytorch-grad-cam's softmax the constant channels do count, with the zero input's score
    ref, w = score_cam_reference(model, p, x, t, weighting="softmax", score="logits", align=True)
    e = onnxai.ScoreCAM(preset="pytorch-grad-cam").explain(model, picture(), target=t)
    np.testing.assert_allclose(e.importance, w, rtol=1e-4)
    assert e.importance[1] == e.importance[3] > 0
    np.testing.assert_allclose(e.map, ref, rtol=1e-4, atol=1e-5 * ref.max())


def test_score_cam_paper_weighting_is_the_increase_over_the_baseline():
    model, p, x, crop = setup(channels=4, softmax=True)
    t = 0
    paper = onnxai.ScoreCAM(preset="paper").explain(model, picture(), target=t)
    authors = onnxai.ScoreCAM().explain(model, picture(), target=t)
    base = np_softmax(forward(np.zeros_like(x), p)[2][0])[t]
    np.testing.assert_allclose(paper.importance, authors.importance - base, rtol=1e-4, atol=1e-6)


def test_score_cam_rejects_bad_options():
    with pytest.raises(InputError, match="weighting"):
        onnxai.ScoreCAM(weighting="mean")
    with pytest.raises(InputError, match="preset"):
        onnxai.ScoreCAM(preset="matlab2")


# --------------------------------------------------------------------------- RISE


def test_rise_masks_made_in_chunks_equal_random_grid_masks():
    whole = kernels.random_grid_masks(50, 13, 11, s=4, p=0.3, seed=5)
    gm = GridMasks(50, 13, 11, s=4, p=0.3, seed=5)
    np.testing.assert_array_equal(np.concatenate([gm(0, 7), gm(7, 33), gm(33, 50)]), whole)
    # the scores are folded in without making the masks again: same as summing the masks
    w = np.random.default_rng(0).standard_normal((50, 3))
    np.testing.assert_allclose(gm.fold(w), np.tensordot(w.T, whole.astype(np.float64), axes=1), rtol=1e-6, atol=1e-6)


def test_rise_equals_numpy_and_is_seeded():
    model, p, x, crop = setup(softmax=True)
    N = 64
    res = onnxai.RISE(num_masks=N, cells=3, p=0.4, seed=2, chunk_size=10).explain(model, picture(), target=[0, 3])
    masks = kernels.random_grid_masks(N, SIZE, SIZE, s=3, p=0.4, seed=2).astype(np.float64)
    probs = np_softmax(forward(x * masks[:, None].astype(np.float32), p)[2])
    for e in res:
        ref = np.tensordot(probs[:, e.target], masks, axes=1) / (N * 0.4)
        np.testing.assert_allclose(e.map, ref, rtol=1e-4, atol=1e-6)
    again = onnxai.RISE(num_masks=N, cells=3, p=0.4, seed=2).explain(model, picture(), target=0)
    np.testing.assert_allclose(again.map, res[0].map, rtol=1e-5, atol=1e-7)
    other = onnxai.RISE(num_masks=N, cells=3, p=0.4, seed=3).explain(model, picture(), target=0)
    assert not np.allclose(other.map, res[0].map)


# --------------------------------------------------------------------------- API and command line


def test_methods_are_registered_and_saved(tmp_path):
    from onnxai.methods import METHODS

    for name, cls in [("cam", onnxai.CAM), ("grad-cam", onnxai.GradCAM), ("score-cam", onnxai.ScoreCAM),
                      ("rise", onnxai.RISE)]:
        assert METHODS[name] is cls
    model, *_ = setup()
    e = onnxai.explain(model, picture(), method="grad-cam", layer="act")
    e.save(tmp_path / "g")
    back = onnxai.Explanation.load(tmp_path / "g")
    np.testing.assert_array_equal(back.raw_map, e.raw_map)
    assert back.extras["layer"] == "act"


def test_cli_explain_with_cams(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from onnxai.cli import main

    m, _ = cam_net(size=16, tail="sigmoid")
    tiny.save(m, tmp_path / "m.onnx")
    Image.fromarray(picture(16)).save(tmp_path / "pic.png")
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "m.onnx"), str(tmp_path / "pic.png"), "--method",
                                  "cam,grad-cam,score-cam,rise", "--masks", "40", "--target", "0",
                                  "--resize", "16", "--out", str(tmp_path / "out"), "--no-progress"])
    assert r.exit_code == 0, r.output
    for name in ("cam", "grad-cam", "score-cam", "rise"):
        assert len(list((tmp_path / "out").glob(f"pic_{name}_class_0.*"))) == 3, name
    assert "layer feat (auto" in r.output
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "m.onnx"), str(tmp_path / "pic.png"), "--method",
                                  "grad-cam", "--layer", "act", "--resize", "16", "--out", str(tmp_path / "o2")])
    assert r.exit_code == 0, r.output
    assert "layer act (given" in r.output and "gradient=elementwise" in r.output
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "m.onnx"), str(tmp_path / "pic.png"), "--method",
                                  "score-cam", "--layer", "nope", "--resize", "16", "--out", str(tmp_path / "o3")])
    assert r.exit_code == 2 and "no tensor named 'nope'" in r.output
