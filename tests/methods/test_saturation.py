"""score="auto": a saturated classifier (p = 1.000 on the input) is explained on its logits by default."""

import numpy as np
import pytest

import onnxai
import onnx_models

REGION = (8, 24, 8, 24)  # the 16x16 block that decides class 1


@pytest.fixture(scope="module")
def saturated():
    model, mask = onnx_models.region_model(size=32, region=REGION, scale=40.0)
    pic = onnx_models.region_picture(size=32, region=REGION)
    assert model.scores(model.prepare(pic)[0])[0, 1] == 1.0  # float32 saturates
    return model, mask, pic


def _top_inside(e, mask, share=0.1):
    m = np.asarray(e.map, np.float64)
    top = m >= np.quantile(m, 1 - share)
    if np.ptp(m) == 0:
        return 0.0
    return float(mask[top].mean())


@pytest.mark.parametrize("make", [
    lambda s: onnxai.Occlusion(window=8, stride=4, fill="black", score=s),
    lambda s: onnxai.RISE(num_samples=400, cells=4, seed=0, score=s),
    lambda s: onnxai.LIME(num_samples=300, surrogate="ridge", segmentation="grid", num_features=16, fill="black", score=s),
    lambda s: onnxai.KernelSHAP(num_samples=300, segmentation="grid", num_features=16, fill="black", score=s),
    lambda s: onnxai.ScoreCAM(preset="paper", score=s),
])
def test_saturated_model_is_explained_on_logits_by_default(saturated, make):
    model, mask, pic = saturated
    e = make("auto").explain(model, pic, target=1)
    assert e.extras["score"] == "logits" and "saturated" in e.extras["score_note"]
    assert _top_inside(e, mask) >= 0.9
    forced = make("probabilities").explain(model, pic, target=1)  # the override
    assert forced.extras["score"] == "probabilities" and "score_note" not in forced.extras


def test_occlusion_on_saturated_probabilities_misses_the_region(saturated):
    model, mask, pic = saturated
    e = onnxai.Occlusion(window=8, stride=4, fill="black", score="probabilities").explain(model, pic, target=1)
    assert _top_inside(e, mask) < 0.5


def test_unsaturated_input_stays_on_probabilities(region_model):
    model, _ = region_model
    pic = np.full((16, 16, 3), 128, np.uint8)  # p(class 1) about 0.5
    e = onnxai.Occlusion(window=4, stride=2).explain(model, pic, target=1)
    assert e.extras["score"] == "probabilities" and "score_note" not in e.extras


def test_score_cam_presets_default_to_auto(saturated):
    model, _, pic = saturated
    assert onnxai.ScoreCAM(preset="paper").explain(model, pic, target=1).extras["score"] == "logits"
    # the authors' w_k = s_k is not a difference: it stays on probabilities and says why
    authors = onnxai.ScoreCAM().explain(model, pic, target=1)
    assert authors.extras["score"] == "probabilities" and "not defined on logits" in authors.extras["score_note"]
    kept = onnxai.ScoreCAM(preset="pytorch-grad-cam").explain(model, pic, target=1)
    assert kept.extras["score"] == "logits" and "score_note" not in kept.extras  # its own choice, not a switch
