"""CAM and Grad-CAM on hand-built ONNX models (onnx_models.cam_net), against numpy computations; the
registration of the layer methods and the command line. Score-CAM, RISE and layer choice have their own files.

The models: Conv(3->K, 3x3, stride 2) -> Relu ("act") -> [tail] -> GlobalAveragePool -> Flatten ->
Gemm -> [Softmax], where the tail between "act" and the pooling is nothing, a Sigmoid (non-linear but
per element) or a 1x1 Conv + Relu (mixes channels), so Grad-CAM's three gradient paths are checked
against analytic gradients computed here.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxai
import onnx_models
from onnxai.errors import LayerError
from onnxai.methods.layers import resolve_layer
from onnx_models import CAM_SIZE as SIZE, cam_forward, cam_net
from onnx_models import cam_picture as picture, cam_setup as setup, cam_up as up


# --------------------------------------------------------------------------- references

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


# --------------------------------------------------------------------------- CAM


@pytest.mark.parametrize("softmax", [False, True])
def test_cam_equals_numpy(softmax):
    model, p, x, crop = setup(softmax=softmax)
    act, _, logits = cam_forward(x, p)
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
    m, p = onnx_models.nhwc_reduce_net(size=6, channels=4, classes=3)
    model = onnxai.Model(m, providers="cpu", preprocess={"resize": 6, "crop": 6, "layout": "NHWC"})
    pic = picture(6)
    x, _ = model.prepare(pic)
    act = np.maximum(x[0].astype(np.float64) @ p["P"], 0)  # (h, w, K)
    e = onnxai.CAM().explain(model, pic, target=1)
    np.testing.assert_allclose(e.raw_map, act @ p["F"][1], rtol=1e-5, atol=1e-5)
    assert e.extras["layer_layout"] == "nhwc"


def test_cam_without_a_linear_head_raises_what_it_found():
    m, _ = onnx_models.no_pool_net()
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


# --------------------------------------------------------------------------- Grad-CAM


@pytest.mark.parametrize("softmax", [False, True])
def test_grad_cam_exact_is_relu_cam_over_z_and_central_differences_agree(softmax):
    model, p, x, crop = setup(softmax=softmax)
    act, _, logits = cam_forward(x, p)
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
    act, _, logits = cam_forward(x, p)
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


# --------------------------------------------------------------------------- Score-CAM


# --------------------------------------------------------------------------- RISE


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
    onnx_models.save(m, tmp_path / "m.onnx")
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
