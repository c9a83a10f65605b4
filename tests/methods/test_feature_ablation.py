"""Feature ablation: each superpixel's score drop when it alone is hidden, from M + 1 forward passes."""

from __future__ import annotations

import numpy as np
import pytest

import onnxai
import onnx_models

SEGMENTS = np.repeat(np.repeat(np.arange(9).reshape(3, 3), 4, 0), 4, 1)  # nine 4x4 superpixels on 12x12


@pytest.fixture(scope="module")
def case():
    model, picture = onnx_models.softmax_conv_case(seed=1)
    return model, picture


def test_drops_equal_numpy_and_cost_m_plus_one_passes(case, monkeypatch):
    model, picture = case
    x, crop = model.prepare(picture, cropped=True)
    fill = onnxai.methods.fills.make_fill(model, crop, x, "mean")
    rows = []
    real = model.run_batch
    monkeypatch.setattr(model, "run_batch", lambda b, kind="probabilities": rows.append(len(b)) or real(b, kind))
    e = onnxai.FeatureAblation(segmentation=SEGMENTS, fill="mean", score="logits").explain(
        model, picture, target="top2", cropped=True)
    monkeypatch.undo()
    assert sum(rows) == 1 + 9 + 1  # the first pass (targets), then the 9 ablations and the input in one run
    full = model.scores(x, "logits")[0]
    for expl in e:
        want = []
        for j in range(9):
            hidden = np.where((SEGMENTS == j)[None, None], fill, x)
            want.append(full[expl.target] - model.scores(hidden, "logits")[0, expl.target])
        np.testing.assert_allclose(expl.importance, want, atol=1e-5)
        np.testing.assert_allclose(expl.map, expl.importance[SEGMENTS])
        assert expl.extras["score"] == "logits" and expl.extras["num_features"] == 9


def test_a_feature_that_does_not_matter_gets_zero(case):
    """Hiding a superpixel with its own picture (fill = the picture itself) changes nothing."""
    model, picture = case
    e = onnxai.FeatureAblation(segmentation=SEGMENTS, fill=picture).explain(model, picture, target=0, cropped=True)
    np.testing.assert_allclose(e.importance, 0, atol=1e-7)
