"""onnxai.features: superpixel counts, contiguous labels, grids, user label maps, the dispatcher."""

from __future__ import annotations

import numpy as np
import pytest

from onnxai import features
from onnxai.errors import InputError


@pytest.fixture(scope="module")
def cat():
    """skimage's chelsea scaled to 120x180 (nearest, for speed) as (H, W, 3) uint8."""
    skdata = pytest.importorskip("skimage.data")
    img = skdata.chelsea()  # (300, 451, 3)
    rows = np.linspace(0, img.shape[0] - 1, 120).round().astype(int)
    cols = np.linspace(0, img.shape[1] - 1, 180).round().astype(int)
    return np.ascontiguousarray(img[rows][:, cols])


def _assert_contiguous(segments, shape):
    assert segments.dtype == np.int32 and segments.shape == shape
    k = features.num_segments(segments)
    np.testing.assert_array_equal(np.unique(segments), np.arange(k))
    return k


@pytest.mark.parametrize("n", [20, 50, 100])
def test_slic_count_close_to_request(cat, n):
    seg = features.superpixels(cat, num_features=n, method="slic")
    k = _assert_contiguous(seg, cat.shape[:2])
    assert 0.6 * n <= k <= 1.25 * n


@pytest.mark.parametrize("n", [20, 50, 100])
def test_felzenszwalb_count_close_to_request(cat, n):
    seg = features.superpixels(cat, num_features=n, method="felzenszwalb")
    k = _assert_contiguous(seg, cat.shape[:2])
    assert abs(k - n) <= max(2, 0.1 * n)


def test_quickshift_lime_defaults_and_seed(cat):
    a = features.superpixels(cat, method="quickshift", seed=3)
    k = _assert_contiguous(a, cat.shape[:2])
    assert k > 1
    np.testing.assert_array_equal(a, features.superpixels(cat, method="quickshift", seed=3))
    # num_features is not a quickshift parameter: the result does not depend on it
    np.testing.assert_array_equal(a, features.superpixels(cat, num_features=7, method="quickshift", seed=3))
    finer = features.superpixels(cat, method="quickshift", seed=3, max_dist=10)
    assert features.num_segments(finer) > k


def test_superpixels_accept_grey_and_reject_bad_input(cat):
    grey = cat.mean(axis=2).astype(np.uint8)
    _assert_contiguous(features.superpixels(grey, 30), grey.shape)
    with pytest.raises(InputError, match="slic, quickshift, felzenszwalb"):
        features.superpixels(cat, 30, method="watershed")
    with pytest.raises(InputError, match="num_features"):
        features.superpixels(cat, 0)
    with pytest.raises(InputError, match="RGB"):
        features.superpixels(np.zeros((4, 4, 4), np.uint8), 3)
    with pytest.raises(InputError, match="slic"):
        features.superpixels(cat, 30, method="slic", no_such_option=1)


@pytest.mark.parametrize("h, w, n", [(224, 224, 49), (224, 224, 50), (224, 300, 50), (300, 100, 30), (10, 200, 8),
                                     (7, 5, 100), (97, 61, 1)])
def test_grid_cells_count_aspect_and_equal_sizes(h, w, n):
    seg = features.grid(h, w, n)
    k = _assert_contiguous(seg, (h, w))
    rows = len(np.unique(seg[:, 0]))
    cols = len(np.unique(seg[0, :]))
    assert rows * cols == k
    heights = np.bincount(seg[:, 0] // cols)
    widths = np.bincount(seg[0, :] % cols)
    assert heights.max() - heights.min() <= 1 and widths.max() - widths.min() <= 1
    if n <= min(h, w):
        assert abs(k - n) <= max(rows, cols) / 2
        # cells are as square as a layout with about n cells can be: no rows x cols with
        # |rows * cols - n| <= |k - n| has cells closer to square (log aspect ratio)
        def skew(r, c):
            return abs(np.log((h / r) / (w / c)))
        best = min(skew(r, c) for r in range(1, n + 1) for c in range(1, n + 1) if abs(r * c - n) <= abs(k - n))
        assert skew(rows, cols) <= best + np.log(1.5)
    assert seg[0, 0] == 0 and seg[-1, -1] == k - 1  # row-major numbering


def test_grid_square_exact():
    seg = features.grid(224, 224, 49)
    assert features.num_segments(seg) == 49
    np.testing.assert_array_equal(np.bincount(seg.ravel()), np.full(49, 32 * 32))


def test_from_labels_relabels_and_checks_shape():
    labels = np.array([[5, 5, 9], [-2, 9, 5]])
    seg = features.from_labels(labels, (2, 3, 3))
    np.testing.assert_array_equal(seg, [[0, 0, 1], [2, 1, 0]])
    assert seg.dtype == np.int32
    np.testing.assert_array_equal(features.from_labels(labels.astype(np.float32), (2, 3)), seg)
    with pytest.raises(InputError, match="2x3 but the image is 4x3"):
        features.from_labels(labels, (4, 3))
    with pytest.raises(InputError, match="integers"):
        features.from_labels(labels + 0.5, (2, 3))


def test_segment_dispatcher(cat):
    h, w = cat.shape[:2]
    np.testing.assert_array_equal(features.segment(cat, "grid", 24), features.grid(h, w, 24))
    np.testing.assert_array_equal(features.segment(cat, "slic", 40), features.superpixels(cat, 40, "slic"))
    user = np.arange(h * w).reshape(h, w) // 1000 * 3
    np.testing.assert_array_equal(features.segment(cat, labels=user), features.from_labels(user, cat.shape))
    with pytest.raises(InputError, match="slic, quickshift, felzenszwalb, grid"):
        features.segment(cat, "kmeans")
    with pytest.raises(InputError, match="num_features"):
        features.segment(cat, "grid", -3)
    assert features.num_segments(np.zeros((0, 0), np.int32)) == 0


def noise_picture(size=64, seed=0):
    """A uniform-texture picture: SLIC (compactness 10) returns ONE segment for 49 asked."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype(np.uint8)


def test_segment_enough_retries_slic_on_a_noisy_picture():
    pic = noise_picture()
    assert features.num_segments(features.segment(pic, "slic", 49)) == 1  # the failure it guards against
    segments, how = features.segment_enough(pic, "slic", 49)
    assert features.num_segments(segments) >= 25
    assert how.startswith("slic gave 1 feature of the 49 asked; slic with compactness=")
    chelsea_like = np.zeros((64, 64, 3), np.uint8)
    chelsea_like[:, 32:] = 200
    assert features.segment_enough(chelsea_like, "slic", 4)[1] is None  # enough at once: nothing said


def test_segment_enough_falls_back_to_a_grid():
    pic = np.full((64, 64, 3), 128, np.uint8)  # Felzenszwalb finds one region in a flat picture
    segments, how = features.segment_enough(pic, "felzenszwalb", 16)
    assert features.num_segments(segments) == 16 and "a grid of 16 cells is used instead" in how
