"""Method parameters of the wrong type or out of range: one InputError naming the parameter, at
construction where the value alone decides, at explain where the input's size does (RISE's cells).
Each case below raised a TypeError, ValueError or OverflowError from inside Python, numpy or scipy
before (found by giving every parameter of every method odd values), or passed and failed later."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import onnx_models
import onnxai
from onnxai.errors import InputError

BAD = [
    (onnxai.LIME, "seed", "abc", "seed must be a non-negative integer"),
    (onnxai.LIME, "seed", -1, "seed must be a non-negative integer"),
    (onnxai.LIME, "seed", 1.5, "seed must be a non-negative integer"),
    (onnxai.LIME, "keep_probability", "abc", r"keep_probability must be a number > 0 and < 1; got 'abc'"),
    (onnxai.LIME, "keep_probability", 1.0, r"keep_probability must be a number > 0 and < 1"),
    (onnxai.LIME, "kernel_width", "wide", r"kernel_width must be a number > 0"),
    (onnxai.LIME, "alpha", -1, r"alpha must be a number >= 0"),
    (onnxai.RISE, "keep_probability", None, r"keep_probability must be a number > 0 and <= 1; got None"),
    (onnxai.RISE, "seed", float("nan"), "seed must be a non-negative integer"),
    (onnxai.FeatureAblation, "seed", [1, 2], "seed must be a non-negative integer"),
    (onnxai.KernelSHAP, "seed", "", "seed must be a non-negative integer"),
    (onnxai.KernelSHAP, "background_size", "ten", "background_size must be an integer >= 1"),
    (onnxai.KernelSHAP, "l1_reg", float("inf"), "l1_reg must be False"),
    (onnxai.GradCAM, "step", "abc", r"step must be a number > 0; got 'abc'"),
    (onnxai.GradCAM, "channel_axis", 2, r"channel_axis is 1 \(NCHW\) or 3 \(NHWC\); got 2"),
    (onnxai.CAM, "channel_axis", "abc", r"channel_axis is 1 \(NCHW\) or 3 \(NHWC\)"),
    (onnxai.ScoreCAM, "channel_axis", float("inf"), r"channel_axis is 1 \(NCHW\) or 3 \(NHWC\)"),
    (onnxai.ScoreCAM, "prefix_tokens", -1, "prefix_tokens must be an integer >= 0"),
    (onnxai.ScoreCAM, "preset", ["authors"], "preset must be one of"),
]


@pytest.mark.parametrize("cls, name, value, words", BAD, ids=lambda v: repr(v)[:20])
def test_a_bad_parameter_is_one_clear_error(cls, name, value, words):
    with pytest.raises(InputError, match=words):
        cls(**{name: value})


@pytest.mark.parametrize("fill", [float("nan"), float("inf"), "inf,0,0", "nan,1,2"])
def test_a_fill_that_is_not_a_grey_value_or_colour(fill):
    model, _ = onnx_models.region_model()
    with pytest.raises(InputError, match="grey fill is a number 0..255|colour fill is 'R,G,B'"):
        onnxai.Occlusion(window=4, stride=4, fill=fill).explain(model, onnx_models.region_picture())


def test_rise_cells_are_checked_against_the_input():
    model, _ = onnx_models.region_model(size=16)
    pic = onnx_models.region_picture(size=16)
    with pytest.raises(InputError, match="17 cells per side is more than the 16x16 input has pixels"):
        onnxai.RISE(num_samples=8, cells=17).explain(model, pic)
    from onnxai.kernels.masks import GridMasks

    with pytest.raises(InputError, match="sampling='sobol' draws at most 145 cells per side"):
        GridMasks(4, 300, 300, 146, sampling="sobol")
    assert GridMasks(4, 300, 300, 146, sampling="independent").grid.shape == (4, 146, 146)


def test_l1_reg_none_is_no_selection():
    model, _ = onnx_models.region_model()
    pic = onnx_models.region_picture()
    kw = dict(num_samples=64, segmentation="grid", num_features=16)
    a = onnxai.KernelSHAP(l1_reg=None, **kw).explain(model, pic)
    b = onnxai.KernelSHAP(l1_reg=False, **kw).explain(model, pic)
    np.testing.assert_array_equal(a.importance, b.importance)


def test_lime_tabular_background_and_its_old_name_with_arrays():
    model = onnx_models.mlp_model(4)
    train = np.random.default_rng(0).standard_normal((30, 4))
    with pytest.raises(InputError, match="background must be training rows of numbers"):
        onnxai.LimeTabular(background="abc")
    with pytest.raises(InputError, match="feature_names is a list of names"):
        onnxai.LimeTabular(background=train, num_samples=50, feature_names=3).explain(model, train[:1])
    with warnings.catch_warnings(record=True) as caught:  # an array under the old name: compared safely
        warnings.simplefilter("always")
        old = onnxai.LimeTabular(training=train, num_samples=50).explain(model, train[:1])
    assert any("training=" in str(w.message) for w in caught)
    new = onnxai.LimeTabular(background=train, num_samples=50).explain(model, train[:1])
    np.testing.assert_array_equal(old.values, new.values)


def test_odd_pictures_and_an_empty_target_list():
    model, _ = onnx_models.region_model()
    for bad in (5, [[1, 2], [3, 4]], np.zeros(16, np.uint8)):
        with pytest.raises(InputError, match="a picture is a file path or an|expected an RGB picture as a"):
            model.predict(bad)
    with pytest.raises(InputError, match=r"a picture is a file path or an \(H, W, 3\) uint8 array; got int"):
        onnxai.explain(model, 5, method="occlusion")
    with pytest.raises(InputError, match="the list of target classes is empty"):
        onnxai.explain(model, onnx_models.region_picture(), method="occlusion", target=[])
    pics = np.stack([onnx_models.region_picture(seed=s) for s in range(3)])  # (N, H, W, 3): N pictures
    assert len(model.predict(pics, top=1)) == 3 and len(model.predict(list(pics), top=1)) == 3
