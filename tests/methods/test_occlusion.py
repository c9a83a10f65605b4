"""Occlusion sensitivity against an obviously-correct numpy loop, and on a model with a known region."""

import numpy as np
import pytest
from PIL import Image

import onnxai
from onnxai import kernels
from onnxai.methods.occlusion import window_average
import onnx_models


def _slow_occlusion(model, pic, window, stride, fill_value):
    """One perturbed picture at a time, windows enumerated with plain Python loops."""
    h, w = pic.shape[:2]
    base = model.scores(model.prepare(pic)[0])[0, 1]
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    tops = list(range(0, h - window + 1, stride))
    lefts = list(range(0, w - window + 1, stride))
    if tops[-1] != h - window:
        tops.append(h - window)
    if lefts[-1] != w - window:
        lefts.append(w - window)
    for t in tops:
        for l in lefts:
            occluded = pic.copy()
            occluded[t:t + window, l:l + window] = fill_value
            s = model.scores(model.preprocess.normalise(occluded))[0, 1]
            total[t:t + window, l:l + window] += base - s
            count[t:t + window, l:l + window] += 1
    return total / count


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_occlusion_equals_slow_loop(layout):
    model, _ = onnx_models.region_model(layout=layout)
    pic = onnx_models.region_picture()
    e = onnxai.Occlusion(window=5, stride=3, fill=0, score="probabilities").explain(model, pic, target=1)
    ref = _slow_occlusion(model, pic, 5, 3, 0)
    np.testing.assert_allclose(e.map, ref, atol=1e-6)
    assert e.map.shape == (16, 16)


def test_occlusion_mass_inside_region(region_model):
    model, mask = region_model
    e = onnxai.Occlusion(window=4, stride=2, fill="black", score="probabilities").explain(model, onnx_models.region_picture(), target="top1")
    assert e.target == 1
    pos = np.clip(e.map, 0, None)
    assert pos[mask > 0].sum() / pos.sum() > 0.8


def test_window_average_matches_loop():
    rng = np.random.default_rng(0)
    windows = kernels.sliding_windows(20, 13, (6, 4), (3, 5), clip_mode="clip")
    vals = rng.standard_normal(windows.shape[0])
    total = np.zeros((20, 13))
    count = np.zeros((20, 13))
    for (t, l, b, r), v in zip(windows, vals):
        total[t:b, l:r] += v
        count[t:b, l:r] += 1
    ref = np.where(count > 0, total / np.maximum(count, 1), 0)
    np.testing.assert_allclose(window_average(windows, vals, 20, 13), ref, atol=1e-6)


def test_occlusion_logits_kind_and_bad_window(region_model):
    model, _ = region_model
    pic = onnx_models.region_picture()
    e = onnxai.Occlusion(window=4, stride=4, fill=0, kind="logits").explain(model, pic, target=1)
    assert e.map.max() > 0
    with pytest.raises(onnxai.InputError, match="larger than the model input"):
        onnxai.Occlusion(window=40).explain(model, pic)
    with pytest.raises(onnxai.InputError, match="clip_mode"):
        onnxai.Occlusion(clip_mode="outside")


def test_cropped_pictures_are_not_cropped_again():
    """Explaining Explanation.image again with cropped=True gives the same input, not a zoomed one."""
    region = (4, 12, 4, 12)  # aligned with the 4-pixel windows
    m, _ = onnx_models.region_net(region=region)
    model = onnxai.load(m, preprocess=onnxai.Preprocess(resize=20, crop=16, mean=(0.5,) * 3, std=(0.25,) * 3),
                        providers="cpu")
    big = np.asarray(Image.fromarray(onnx_models.region_picture(region=region)).resize((24, 24)))
    occ = onnxai.Occlusion(window=4, stride=4, fill=0)
    first = occ.explain(model, big, target=1)
    again = occ.explain(model, first.image, target=1, cropped=True)
    assert np.array_equal(again.image, first.image)
    np.testing.assert_allclose(again.map, first.map, atol=1e-6)
    zoomed = occ.explain(model, first.image, target=1)  # without the flag it is resized and cropped again
    assert not np.array_equal(zoomed.image, first.image)
    with pytest.raises(onnxai.InputError, match="cropped=True needs a picture of the model's input size 16x16"):
        occ.explain(model, big, cropped=True)
