"""Score-CAM on cam_net against a numpy reference of the authors' loop and of pytorch-grad-cam's ScoreCAM."""

from __future__ import annotations

import numpy as np
import pytest

import onnxai
from onnx_models import cam_forward, np_softmax
from onnx_models import cam_picture as picture, cam_setup as setup, cam_up as up
from onnxai.errors import InputError


# --------------------------------------------------------------------------- Score-CAM


def score_cam_reference(model, p, x, t, weighting="score", score="probabilities", align=False):
    """The authors' loop (haofanwang/Score-CAM) in numpy, or pytorch-grad-cam's ScoreCAM, zero baseline."""
    act = cam_forward(x, p)[0][0]
    K = act.shape[0]
    s = np.empty(K)
    maps = []
    for k in range(K):
        u = up(act[k], align).astype(np.float64)
        if act[k].max() == act[k].min():
            u[:] = 0
        else:
            u = (u - u.min()) / (u.max() - u.min())
        logits = cam_forward(x * u[None, None].astype(np.float32), p)[2][0]
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
    t = int(np.argmax(cam_forward(x, p)[2][0]))
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
    # the model's own activations (not the numpy reference, which holds whatever onnxai does) are constant there
    act = model.activations(x, "act")[0]["act"][0]
    assert act[1].max() == act[1].min() == 0 and act[3].max() == act[3].min() == np.float32(0.7)
    t = int(np.argmax(cam_forward(x, p)[2][0]))
    for preset in ("authors", "paper", "pytorch-grad-cam"):
        skip = onnxai.ScoreCAM(preset=preset).explain(model, picture(), target=t)
        full = onnxai.ScoreCAM(preset=preset, skip_constant=False).explain(model, picture(), target=t)
        assert skip.extras["forward_passes"] == 4 and full.extras["forward_passes"] == 6
        assert skip.extras["constant_channels"] == 2
        np.testing.assert_allclose(skip.importance, full.importance, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(skip.map, full.map, rtol=1e-6, atol=1e-7 * max(full.map.max(), 1e-12))
        if preset == "authors":  # the authors' loop gives a constant channel no weight at all
            assert skip.importance[1] == skip.importance[3] == 0 and np.count_nonzero(skip.importance) == 4
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
    base = np_softmax(cam_forward(np.zeros_like(x), p)[2][0])[t]
    np.testing.assert_allclose(paper.importance, authors.importance - base, rtol=1e-4, atol=1e-6)


def test_score_cam_rejects_bad_options():
    with pytest.raises(InputError, match="weighting"):
        onnxai.ScoreCAM(weighting="mean")
    with pytest.raises(InputError, match="preset"):
        onnxai.ScoreCAM(preset="matlab2")
