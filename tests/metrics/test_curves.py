"""Deletion and insertion curves (and the pieces they use) against hand-computed values on region_net."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from onnxai import metrics
import onnx_models
from region_case import REGION, SIZE, _good_map, _p1


def test_auc_is_the_trapezoid_rule():
    assert metrics.auc([1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert metrics.auc([1.0, 1.0, 0.0], [0.0, 0.25, 1.0]) == pytest.approx(0.25 + 0.75 * 0.5)
    assert metrics.auc([0.2, 0.2, 0.2, 0.2]) == pytest.approx(0.2)


def test_step_counts_and_ranks():
    np.testing.assert_array_equal(metrics.step_counts(10, 3), [0, 3, 6, 9, 10])
    np.testing.assert_array_equal(metrics.step_counts(9, 3), [0, 3, 6, 9])
    ranks = metrics.pixel_ranks(np.array([[0.1, 0.9], [0.5, 0.5]]))
    np.testing.assert_array_equal(ranks, [[3, 0], [1, 2]])  # ties in raster order


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_deletion_and_insertion_equal_hand_computed_curves(layout):
    model, mask = onnx_models.region_model(layout=layout)
    pic = onnx_models.region_picture(SIZE, REGION)
    map_ = np.random.default_rng(3).random((SIZE, SIZE)).astype(np.float32)
    step, sigma = 20, 2.0
    order = np.argsort(-map_.ravel(), kind="stable")
    counts = list(range(0, SIZE * SIZE, step)) + [SIZE * SIZE]
    blurred = np.asarray(Image.fromarray(pic).filter(ImageFilter.GaussianBlur(radius=sigma)), np.float64)
    want_del, want_ins = [], []
    for c in counts:
        gone = np.zeros(SIZE * SIZE, bool)
        gone[order[:c]] = True
        gone = gone.reshape(SIZE, SIZE)
        deleted = np.where(gone[..., None], 0.0, pic.astype(np.float64))  # black substrate
        inserted = np.where(gone[..., None], pic.astype(np.float64), blurred)
        want_del.append(_p1(deleted, mask))
        want_ins.append(_p1(inserted, mask))
    x = np.array(counts) / (SIZE * SIZE)
    d = metrics.deletion(model, pic, map_, target=1, step=step, substrate="black")
    i = metrics.insertion(model, pic, map_, target=1, step=step, blur_sigma=sigma, chunk_size=5)
    np.testing.assert_allclose(d.fractions, x)
    np.testing.assert_allclose(d.scores, want_del, atol=1e-5)
    np.testing.assert_allclose(i.scores, want_ins, atol=1e-5)
    trapz = lambda y: float(np.sum(np.diff(x) * (np.array(y)[1:] + np.array(y)[:-1]) / 2))
    assert d.auc == pytest.approx(trapz(want_del), abs=1e-5)
    assert i.auc == pytest.approx(trapz(want_ins), abs=1e-5)


def test_informative_region_first_beats_reverse_and_random(region_model):
    model, mask = region_model
    pic = onnx_models.region_picture(SIZE, REGION)
    good = _good_map(mask)
    maps = {"good": good, "reverse": -good, "random": metrics.random_map(mask.shape, seed=0)}
    dele = {k: metrics.deletion(model, pic, m, target=1, step=8).auc for k, m in maps.items()}
    ins = {k: metrics.insertion(model, pic, m, target=1, step=8).auc for k, m in maps.items()}
    assert dele["good"] < dele["random"] < dele["reverse"]
    assert ins["good"] > ins["random"] and ins["good"] > ins["reverse"]


def test_coarse_maps_are_resized_and_default_step_is_one_row(region_model):
    model, mask = region_model
    pic = onnx_models.region_picture(SIZE, REGION)
    coarse = np.zeros((4, 4), np.float32)
    coarse[1:3, 1:3] = 1.0
    d = metrics.deletion(model, pic, coarse, target=1)
    assert d.scores.shape == (SIZE + 1,)  # SIZE*SIZE pixels, SIZE per step
    assert d.auc < metrics.deletion(model, pic, -coarse, target=1).auc


def test_default_deletion_substrate_is_model_space_zero(region_model):
    model, _ = region_model
    pic = onnx_models.region_picture(SIZE, REGION)
    map_ = np.random.default_rng(0).random((SIZE, SIZE)).astype(np.float32)
    d = metrics.deletion(model, pic, map_, target=1, step=SIZE * SIZE // 4)
    x, _ = model.prepare(pic)
    assert d.scores[0] == pytest.approx(float(model.scores(x)[0, 1]), abs=1e-6)
    assert d.scores[-1] == pytest.approx(float(model.scores(np.zeros_like(x))[0, 1]), abs=1e-6)
    black = metrics.deletion(model, pic, map_, target=1, step=SIZE * SIZE // 4, substrate="black")
    assert black.scores[-1] != pytest.approx(d.scores[-1], abs=1e-3)  # black is another picture here
