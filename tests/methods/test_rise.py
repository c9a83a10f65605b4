"""RISE on cam_net against numpy: the random grid masks made in chunks, the weighted sum of the masks."""

from __future__ import annotations

import numpy as np

import onnxai
from onnx_models import CAM_SIZE as SIZE, cam_forward, np_softmax
from onnx_models import cam_picture as picture, cam_setup as setup
from onnxai import kernels
from onnxai.methods.rise import GridMasks


# --------------------------------------------------------------------------- RISE


def test_rise_masks_made_in_chunks_equal_random_grid_masks():
    whole = kernels.random_grid_masks(50, 13, 11, s=4, p=0.3, seed=5)
    gm = GridMasks(50, 13, 11, s=4, p=0.3, seed=5)
    np.testing.assert_array_equal(np.concatenate([gm(0, 7), gm(7, 33), gm(33, 50)]), whole)
    # the scores are folded in without making the masks again: same as summing the masks
    w = np.random.default_rng(0).standard_normal((50, 3))
    np.testing.assert_allclose(gm.fold(w), np.tensordot(w.T, whole.astype(np.float64), axes=1), rtol=1e-6, atol=1e-6)


def test_designs_and_folds_made_in_chunks_equal_one_piece(monkeypatch):
    """The Sobol points are drawn SOBOL_CHUNK at a time and the fold takes FOLD_CHUNK masks at a time (a
    fold of 65,536 masks at 224 x 224 peaked at 2.7 GB in one piece): both equal the one-piece results."""
    from scipy.stats import qmc

    from onnxai.kernels import masks as km

    monkeypatch.setattr(km, "SOBOL_CHUNK", 16)
    monkeypatch.setattr(km, "FOLD_CHUNK", 7)
    n, s = 50, 4
    gm = GridMasks(n, 13, 11, s=s, p=0.3, seed=5, sampling="sobol")
    u = qmc.Sobol(s * s + 2, scramble=True, seed=np.random.default_rng(5)).random_base2(6)[:n]
    np.testing.assert_array_equal(gm.grid, (u[:, :s * s] < 0.3).reshape(n, s, s))
    np.testing.assert_array_equal(gm.shifts[:, 0], np.minimum((u[:, s * s] * 4).astype(np.int64), 3))
    np.testing.assert_array_equal(gm.shifts[:, 1], np.minimum((u[:, s * s + 1] * 3).astype(np.int64), 2))
    w = np.random.default_rng(1).standard_normal((n, 2))
    folded = gm.fold(w)
    np.testing.assert_allclose(folded, np.tensordot(w.T, gm(0, n).astype(np.float64), axes=1), rtol=1e-6, atol=1e-6)
    monkeypatch.setattr(km, "FOLD_CHUNK", n)
    np.testing.assert_allclose(folded, gm.fold(w), rtol=1e-12, atol=1e-12)


def test_rise_equals_numpy_and_is_seeded():
    model, p, x, crop = setup(softmax=True)
    N = 64
    res = onnxai.RISE(num_masks=N, cells=3, p=0.4, seed=2, chunk_size=10, sampling="independent").explain(model, picture(), target=[0, 3])
    masks = kernels.random_grid_masks(N, SIZE, SIZE, s=3, p=0.4, seed=2).astype(np.float64)
    probs = np_softmax(cam_forward(x * masks[:, None].astype(np.float32), p)[2])
    for e in res:
        ref = np.tensordot(probs[:, e.target], masks, axes=1) / (N * 0.4)
        np.testing.assert_allclose(e.map, ref, rtol=1e-4, atol=1e-6)
    again = onnxai.RISE(num_masks=N, cells=3, p=0.4, seed=2, sampling="independent").explain(model, picture(), target=0)
    np.testing.assert_allclose(again.map, res[0].map, rtol=1e-5, atol=1e-7)
    other = onnxai.RISE(num_masks=N, cells=3, p=0.4, seed=3, sampling="independent").explain(model, picture(), target=0)
    assert not np.allclose(other.map, res[0].map)
