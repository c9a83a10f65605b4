"""Issue 11 part 3, designs that need fewer passes: LIME's complementary pairs, RISE's scrambled Sobol
masks. Each is seeded, prefix-consistent (so num_samples="auto" can stop anywhere) and correct."""

from __future__ import annotations

import numpy as np
import pytest

import onnxai
import onnx_models
from onnx_models import cam_picture, cam_setup
from onnxai import kernels
from onnxai.errors import InputError
from onnxai.kernels.masks import GridMasks

REGION = (4, 12, 4, 12)


# --------------------------------------------------------------------------- LIME, complementary pairs


def test_lime_pairs_are_complements_seeded_and_prefix_consistent():
    make = lambda seed, n=301: onnxai.LIME(num_samples=n, surrogate="ridge", sampling="paired",
                                           seed=seed).sample_masks(20)[0]
    m = make(5)
    assert m.shape == (301, 20) and m.dtype == np.uint8
    assert (m[0] == 1).all() and (m[1] == 0).all()  # the full and the empty picture are a pair
    np.testing.assert_array_equal(m[2:300:2] + m[3:301:2], np.ones((149, 20), np.uint8))
    np.testing.assert_array_equal(make(5), m)
    assert not np.array_equal(make(6), m)
    np.testing.assert_array_equal(make(5, 120), m[:120])  # every prefix is the design of that size
    # the drawn halves are the independent design's masks, so each feature is shown half the time
    np.testing.assert_array_equal(m[0::2], kernels.random_binary_masks(151, 20, seed=5))
    assert abs(m[2:].mean() - 0.5) < 1e-12


def test_lime_paired_explains_the_region_with_paired_standard_errors():
    model, mask = onnx_models.region_model(region=REGION)
    pic = onnx_models.region_picture(region=REGION)
    run = lambda s: onnxai.LIME(num_samples=200, segmentation="grid", num_features=16, surrogate="ridge",
                                fill="black", upsample="nearest", sampling="paired", seed=s).explain(model, pic)
    e = run(0)
    pos = np.clip(e.map, 0, None)
    assert pos[mask > 0].sum() / pos.sum() > 0.8
    assert np.isfinite(e.stderr).all() and (e.stderr > 0).all()
    assert np.array_equal(run(0).map, e.map) and not np.array_equal(run(1).map, e.map)


def test_lime_paired_bad_options():
    with pytest.raises(InputError, match="unknown sampling"):
        onnxai.LIME(sampling="pairs")
    with pytest.raises(InputError, match="keep_probability 0.5"):
        onnxai.LIME(sampling="paired", keep_probability=0.3)


# --------------------------------------------------------------------------- RISE, scrambled Sobol


def test_sobol_grid_masks_have_the_right_mean_and_are_seeded_and_prefix_consistent():
    g = GridMasks(1024, 40, 40, s=4, p=0.5, seed=3, sampling="sobol")
    # a scrambled Sobol point set of 2^m points is balanced in every coordinate: each cell shown exactly
    # half the time, each shift value equally often
    np.testing.assert_array_equal(g.grid.mean(0), np.full((4, 4), 0.5))
    assert (np.bincount(g.shifts[:, 0], minlength=10) == 1024 // 10).sum() + \
        (np.bincount(g.shifts[:, 0], minlength=10) == 1024 // 10 + 1).sum() == 10
    for p in (0.25, 0.3):
        q = GridMasks(512, 40, 40, s=4, p=p, seed=3, sampling="sobol").grid.mean(0)
        assert np.abs(q - p).max() <= 1 / 512 + 1e-12
    part = GridMasks(300, 40, 40, s=4, p=0.5, seed=3, sampling="sobol")
    np.testing.assert_array_equal(part.grid, g.grid[:300])
    np.testing.assert_array_equal(part.shifts, g.shifts[:300])
    other = GridMasks(300, 40, 40, s=4, p=0.5, seed=4, sampling="sobol")
    assert not np.array_equal(other.grid, part.grid)
    # the masks made in chunks and the fold agree as for the independent design
    whole = part(0, 300).astype(np.float64)
    np.testing.assert_array_equal(np.concatenate([part(0, 7), part(7, 300)]), whole.astype(np.float32))
    w = np.random.default_rng(0).standard_normal((300, 2))
    np.testing.assert_allclose(part.fold(w), np.tensordot(w.T, whole, axes=1), rtol=1e-6, atol=1e-6)
    # the mean mask is close to p everywhere (much closer than independent draws of the same size)
    ind = GridMasks(1024, 40, 40, s=4, p=0.5, seed=3)
    dev = lambda gm: np.abs(gm(0, 1024).mean(0) - 0.5).max()
    assert dev(g) < 0.02 and dev(g) < dev(ind)
    with pytest.raises(InputError, match="unknown sampling"):
        GridMasks(8, 10, 10, sampling="halton")


def test_rise_sobol_equals_numpy_on_its_masks():
    model, p, x, crop = cam_setup(softmax=True)
    N = 64
    rise = onnxai.RISE(num_samples=N, cells=3, keep_probability=0.5, seed=2, chunk_size=10, sampling="sobol")
    e = rise.explain(model, cam_picture(), target=0)
    masks = GridMasks(N, crop.shape[0], crop.shape[1], 3, 0.5, 2, "sobol")(0, N).astype(np.float64)
    probs = onnx_models.np_softmax(onnx_models.cam_forward(x * masks[:, None].astype(np.float32), p)[2])
    np.testing.assert_allclose(e.map, np.tensordot(probs[:, 0], masks, axes=1) / (N * 0.5), rtol=1e-4, atol=1e-6)
    assert e.stderr.shape == e.map.shape
    with pytest.raises(InputError, match="unknown sampling"):
        onnxai.RISE(sampling="halton")
