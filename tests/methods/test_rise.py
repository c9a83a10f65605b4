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
