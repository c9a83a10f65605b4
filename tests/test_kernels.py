"""onnxai.kernels against straightforward numpy / scikit-learn / torch references, plus invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxai import kernels
from onnxai.errors import InputError

# --------------------------------------------------------------------------------------------
# shared inputs
# --------------------------------------------------------------------------------------------

C, H, W = 3, 13, 17
K = 9


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def image(rng):
    x = rng.normal(size=(C, H, W)).astype(np.float32)
    b = rng.normal(size=(C, H, W)).astype(np.float32)
    seg = rng.integers(0, K, size=(H, W)).astype(np.int32)
    seg.flat[:K] = np.arange(K)  # every label present
    return x, b, seg


def _blend(m, x, b):
    """Reference x_i = b + m_i (x - b) for pixel masks m: (n, H, W)."""
    m = m[:, None].astype(np.float64)
    return (b[None].astype(np.float64) + m * (x[None].astype(np.float64) - b[None].astype(np.float64)))


def _nhwc_view(n):
    """A non-contiguous (n, C, H, W) view, as the engine passes for NHWC models."""
    return np.full((n, H, W, C), np.nan, np.float32).transpose(0, 3, 1, 2)


# --------------------------------------------------------------------------------------------
# composite
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_, np.float32, np.float64])
def test_composite_features_matches_reference(image, rng, dtype):
    x, b, seg = image
    n = 6
    if dtype in (np.uint8, np.bool_):
        masks = (rng.random((n, K)) < 0.5).astype(dtype)
    else:
        masks = rng.random((n, K)).astype(dtype)
    out = kernels.composite_features(x, b, seg, masks)
    assert out.shape == (n, C, H, W) and out.dtype == np.float32
    pix = masks.astype(np.float64)[:, seg]
    np.testing.assert_allclose(out, _blend(pix, x, b), rtol=0, atol=1e-5)
    if dtype in (np.uint8, np.bool_):  # binary masks reproduce x and b exactly
        keep = pix[:, None].astype(bool)
        np.testing.assert_array_equal(out, np.where(keep, x[None], b[None]))


def test_composite_features_non_contiguous_out_and_reuse(image, rng):
    x, b, seg = image
    masks_u8 = (rng.random((5, K)) < 0.5).astype(np.uint8)
    masks_f = rng.random((5, K)).astype(np.float32)
    for masks in (masks_u8, masks_f):
        expected = kernels.composite_features(x, b, seg, masks)
        view = _nhwc_view(5)
        got = kernels.composite_features(x, b, seg, masks, out=view)
        assert got is view
        np.testing.assert_array_equal(view, expected)
    # the same buffer reused for the next chunk holds only the new chunk
    buf = np.empty((5, C, H, W), np.float32)
    kernels.composite_features(x, b, seg, masks_u8, out=buf)
    kernels.composite_features(x, b, seg, masks_f, out=buf)
    np.testing.assert_array_equal(buf, kernels.composite_features(x, b, seg, masks_f))


def test_composite_features_accepts_batch_axis_and_scalar_baseline(image, rng):
    x, _, seg = image
    masks = (rng.random((4, K)) < 0.5).astype(np.uint8)
    got = kernels.composite_features(x[None], 0.0, seg, masks)
    expected = np.where(masks[:, seg][:, None].astype(bool), x[None], np.float32(0))
    np.testing.assert_array_equal(got, expected)
    per_channel = np.array([1.0, 2.0, 3.0], np.float32)[:, None, None]
    got = kernels.composite_features(x, per_channel, seg, np.zeros((1, K), np.uint8))
    np.testing.assert_array_equal(got[0], np.broadcast_to(per_channel, x.shape))


def test_composite_soft_matches_reference(image, rng):
    x, b, _ = image
    masks = rng.random((7, H, W)).astype(np.float32)
    out = kernels.composite_soft(x, b, masks)
    np.testing.assert_allclose(out, _blend(masks, x, b), rtol=0, atol=1e-5)
    view = _nhwc_view(7)
    kernels.composite_soft(x, b, masks, out=view)
    np.testing.assert_array_equal(view, out)
    ends = np.zeros((2, H, W), np.float32)
    ends[0] = 1.0
    out = kernels.composite_soft(x, b, ends)
    np.testing.assert_array_equal(out[0], x)
    np.testing.assert_array_equal(out[1], b)


def test_composite_windows_matches_window_masks(image):
    x, b, _ = image
    windows = np.array([[0, 0, 4, 5], [3, 7, 13, 17], [5, 2, 6, 3], [0, 0, 0, 0], [-3, -2, 2, 30]], np.int32)
    out = kernels.composite_windows(x, b, windows)
    keep = np.ones((len(windows), H, W), bool)
    for i, (t, l, bo, r) in enumerate(windows):
        keep[i, max(t, 0):max(bo, 0), max(l, 0):max(r, 0)] = False
    np.testing.assert_array_equal(out, np.where(keep[:, None], x[None], b[None]))
    np.testing.assert_array_equal(kernels.window_masks(windows, H, W), keep.astype(np.float32))
    np.testing.assert_array_equal(kernels.composite_soft(x, b, kernels.window_masks(windows, H, W)), out)
    view = _nhwc_view(len(windows))
    kernels.composite_windows(x, b, windows, out=view)
    np.testing.assert_array_equal(view, out)


def test_parallel_kernels_agree_bit_for_bit(image, rng):
    x, b, seg = image
    masks = (rng.random((5, K)) < 0.5).astype(np.uint8)
    soft = rng.random((5, H, W)).astype(np.float32)
    windows = kernels.sliding_windows(H, W, 4, 3)[:5]
    for fn, m in ((lambda m, **kw: kernels.composite_features(x, b, seg, m, **kw), masks),
                  (lambda m, **kw: kernels.composite_soft(x, b, m, **kw), soft),
                  (lambda m, **kw: kernels.composite_windows(x, b, m, **kw), windows)):
        np.testing.assert_array_equal(fn(m, parallel=True, out=_nhwc_view(5)), fn(m, parallel=False))


def test_composite_errors_say_what_to_do(image, rng):
    x, b, seg = image
    masks = (rng.random((3, K)) < 0.5).astype(np.uint8)
    with pytest.raises(InputError, match="columns"):
        kernels.composite_features(x, b, seg, masks[:, : K - 1])
    with pytest.raises(InputError, match=r"must be \(3, 3, 13, 17\)"):
        kernels.composite_features(x, b, seg, masks, out=np.empty((3, C, H, W + 1), np.float32))
    with pytest.raises(InputError, match="float32"):
        kernels.composite_features(x, b, seg, masks, out=np.empty((3, C, H, W), np.float64))
    with pytest.raises(InputError, match="segment the same image"):
        kernels.composite_features(x, b, seg[:-1], masks)
    with pytest.raises(InputError, match="broadcast"):
        kernels.composite_features(x, np.zeros((2, 1, 1)), seg, masks)
    with pytest.raises(InputError, match="resize the masks"):
        kernels.composite_soft(x, b, np.ones((2, H + 1, W), np.float32))
    with pytest.raises(InputError, match=r"\(n, 4\)"):
        kernels.composite_windows(x, b, np.zeros((2, 3), np.int32))


def test_segment_means_and_fill(image):
    x, _, seg = image
    means = kernels.segment_means(x, seg)
    assert means.shape == (C, K) and means.dtype == np.float32
    for s in range(K):
        np.testing.assert_allclose(means[:, s], x[:, seg == s].mean(axis=1), rtol=1e-5, atol=1e-6)
    filled = kernels.fill_from_segment_means(x, seg)
    np.testing.assert_array_equal(filled, means[:, seg])
    # an unused label gets mean 0 and k may exceed the labels present
    padded = kernels.segment_means(x, seg, k=K + 2)
    np.testing.assert_array_equal(padded[:, K:], 0)
    with pytest.raises(InputError):
        kernels.segment_means(x, seg, k=K - 1)


# --------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------


def test_random_binary_masks_seed_fraction_first_row():
    a = kernels.random_binary_masks(2000, 50, p=0.3, seed=7)
    assert a.shape == (2000, 50) and a.dtype == np.uint8
    assert (a[0] == 1).all()
    assert set(np.unique(a)) <= {0, 1}
    np.testing.assert_array_equal(a, kernels.random_binary_masks(2000, 50, p=0.3, seed=7))
    assert not np.array_equal(a, kernels.random_binary_masks(2000, 50, p=0.3, seed=8))
    assert abs(a[1:].mean() - 0.3) < 0.01
    b = kernels.random_binary_masks(2000, 50, p=0.3, seed=7, first_all_ones=False)
    np.testing.assert_array_equal(a[1:], b[1:])  # the flag only touches row 0
    assert b[0].mean() < 1
    with pytest.raises(InputError, match="probability"):
        kernels.random_binary_masks(10, 5, p=1.5)


def test_feature_masks_to_pixels(image, rng):
    _, _, seg = image
    masks = rng.random((4, K)).astype(np.float32)
    np.testing.assert_array_equal(kernels.feature_masks_to_pixels(masks, seg), masks[:, seg])
    u8 = (masks < 0.5).astype(np.uint8)
    np.testing.assert_array_equal(kernels.feature_masks_to_pixels(u8, seg), u8[:, seg].astype(np.float32))


def _coverage(windows, h, w):
    cov = np.zeros((h, w), int)
    for t, l, b, r in windows:
        cov[t:b, l:r] += 1
    return cov


@pytest.mark.parametrize("h, w, win, stride", [(13, 17, 4, 3), (224, 224, 32, 16), (20, 9, (5, 4), (5, 4)),
                                               (10, 10, 7, 7), (8, 6, 11, 2), (50, 37, 9, 9)])
def test_sliding_windows_inside_cover_and_stay_inside(h, w, win, stride):
    windows = kernels.sliding_windows(h, w, win, stride, clip_mode="inside")
    assert windows.dtype == np.int32 and windows.shape[1] == 4
    wh, ww = (win, win) if isinstance(win, int) else win
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    t, l, b, r = windows.T
    assert (t >= 0).all() and (l >= 0).all() and (b <= h).all() and (r <= w).all()
    assert ((b - t) == min(wh, h)).all() and ((r - l) == min(ww, w)).all()  # full-size windows
    assert (_coverage(windows, h, w) >= 1).all()
    # starts on the stride grid, except one last window flush with the far border
    for starts, size, step, length in ((t, min(wh, h), sh, h), (l, min(ww, w), sw, w)):
        off_grid = np.unique(starts[starts % step != 0])
        assert off_grid.size == 0 or (off_grid.size == 1 and off_grid[0] == length - size)
    assert len({tuple(x) for x in windows}) == len(windows)


@pytest.mark.parametrize("h, w, win, stride", [(13, 17, 4, 3), (224, 224, 40, 40), (20, 9, (5, 4), (2, 3)),
                                               (10, 10, 7, 7), (8, 6, 11, 2)])
def test_sliding_windows_clip_cover_and_centre_on_grid(h, w, win, stride):
    windows = kernels.sliding_windows(h, w, win, stride, clip_mode="clip")
    wh, ww = (win, win) if isinstance(win, int) else win
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    t, l, b, r = windows.T
    assert (t >= 0).all() and (l >= 0).all() and (b <= h).all() and (r <= w).all()
    assert (b > t).all() and (r > l).all()
    assert (b - t <= wh).all() and (r - l <= ww).all()
    assert (_coverage(windows, h, w) >= 1).all()
    # unclipped windows are centred (at start + size // 2) on the stride grid or on the last pixel
    full = (b - t) == wh
    centres = t[full] + wh // 2
    assert np.all((centres % sh == 0) | (centres == h - 1))
    assert t.min() == 0 and b.max() == h  # windows reach both borders


def test_sliding_windows_worked_examples():
    inside = kernels.sliding_windows(10, 10, 4, 3, clip_mode="inside")
    assert sorted({(a, b) for a, _, b, _ in inside}) == [(0, 4), (3, 7), (6, 10)]
    inside = kernels.sliding_windows(10, 10, 4, 4, clip_mode="inside")
    assert sorted({(a, b) for a, _, b, _ in inside}) == [(0, 4), (4, 8), (6, 10)]
    clip = kernels.sliding_windows(10, 10, 4, 3, clip_mode="clip")
    assert sorted({(a, b) for a, _, b, _ in clip}) == [(0, 2), (1, 5), (4, 8), (7, 10)]
    clip = kernels.sliding_windows(10, 10, 4, 4, clip_mode="clip")  # centres 0, 4, 8 (+9 for the border)
    assert sorted({(a, b) for a, _, b, _ in clip}) == [(0, 2), (2, 6), (6, 10)]
    with pytest.raises(InputError, match="inside, clip"):
        kernels.sliding_windows(10, 10, 4, 3, clip_mode="same")


def _upsample_bilinear_reference(grid, out_h, out_w):
    """Half-pixel-centre bilinear upsampling with clamped borders, written out with numpy."""
    def axis(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0
    y0, y1, ty = axis(grid.shape[0], out_h)
    x0, x1, tx = axis(grid.shape[1], out_w)
    g = grid.astype(np.float64)
    top = g[y0][:, x0] * (1 - tx) + g[y0][:, x1] * tx
    bottom = g[y1][:, x0] * (1 - tx) + g[y1][:, x1] * tx
    return top * (1 - ty)[:, None] + bottom * ty[:, None]


def test_random_grid_masks_follow_rise_recipe():
    n, h, w, s, p, seed = 12, 30, 41, 5, 0.4, 3
    masks = kernels.random_grid_masks(n, h, w, s=s, p=p, seed=seed)
    assert masks.shape == (n, h, w) and masks.dtype == np.float32
    rng = np.random.default_rng(seed)
    grid = rng.random((n, s, s)) < p
    ch, cw = math.ceil(h / s), math.ceil(w / s)
    dy = rng.integers(0, ch, size=n)
    dx = rng.integers(0, cw, size=n)
    for i in range(n):
        up = _upsample_bilinear_reference(grid[i], (s + 1) * ch, (s + 1) * cw)
        np.testing.assert_allclose(masks[i], up[dy[i]:dy[i] + h, dx[i]:dx[i] + w], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(masks, kernels.random_grid_masks(n, h, w, s=s, p=p, seed=seed))
    assert not np.array_equal(masks, kernels.random_grid_masks(n, h, w, s=s, p=p, seed=seed + 1))


def test_random_grid_masks_range_and_mean():
    masks = kernels.random_grid_masks(300, 32, 32, s=8, p=0.5, seed=0)
    assert masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean() - 0.5) < 0.03


# --------------------------------------------------------------------------------------------
# resize
# --------------------------------------------------------------------------------------------


def _cubic(t, a=-0.75):
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def _resize_reference(m, oh, ow, method, align_corners):
    """Straight from the formulas, one output pixel at a time (float64)."""
    h, w = m.shape

    def taps(n_in, n_out, d):
        if method == "nearest":
            return [(min(int(np.floor(np.float32(d) * (np.float32(n_in) / np.float32(n_out)))), n_in - 1), 1.0)]
        if align_corners:
            src = d * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = (d + 0.5) * n_in / n_out - 0.5
        if method == "bilinear":
            src = max(src, 0.0)
            i0 = min(int(np.floor(src)), n_in - 1)
            t = src - i0
            return [(i0, 1 - t), (min(i0 + 1, n_in - 1), t)]
        i0 = int(np.floor(src))
        return [(min(max(j, 0), n_in - 1), _cubic(src - j)) for j in range(i0 - 1, i0 + 3)]

    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = sum(wy * wx * m[iy, ix] for iy, wy in taps(h, oh, i) for ix, wx in taps(w, ow, j))
    return out


RESIZE_CASES = [(7, 7, 30, 30), (5, 9, 17, 13), (3, 4, 3, 4), (8, 8, 3, 5), (1, 1, 4, 4), (6, 3, 1, 7), (4, 6, 9, 2)]
RESIZE_MODES = [("nearest", False), ("bilinear", False), ("bilinear", True), ("bicubic", False), ("bicubic", True)]


@pytest.mark.parametrize("method, align_corners", RESIZE_MODES)
def test_resize_matches_formula_reference(rng, method, align_corners):
    for h, w, oh, ow in RESIZE_CASES:
        m = rng.normal(size=(h, w))
        got = kernels.resize(m, oh, ow, method=method, align_corners=align_corners)
        assert got.shape == (oh, ow) and got.dtype == np.float32
        np.testing.assert_allclose(got, _resize_reference(m, oh, ow, method, align_corners), rtol=0, atol=2e-6)
        got32 = kernels.resize(m.astype(np.float32), oh, ow, method=method, align_corners=align_corners)
        np.testing.assert_allclose(got32, got, rtol=0, atol=2e-6)


@pytest.mark.parametrize("method, align_corners", RESIZE_MODES)
def test_resize_matches_torch_interpolate(rng, method, align_corners):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    for h, w, oh, ow in RESIZE_CASES + [(7, 7, 224, 224), (14, 10, 224, 160), (13, 11, 37, 41)]:
        m = rng.normal(size=(h, w)).astype(np.float32)
        kw = {} if method == "nearest" else {"align_corners": align_corners}
        ref = F.interpolate(torch.from_numpy(m)[None, None], size=(oh, ow), mode=method, **kw)[0, 0].numpy()
        got = kernels.resize(m, oh, ow, method=method, align_corners=align_corners)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
        if method == "nearest":
            np.testing.assert_array_equal(got, ref)


def test_resize_stack_and_invariants(rng):
    maps = rng.normal(size=(5, 6, 8)).astype(np.float32)
    for method in ("nearest", "bilinear", "bicubic"):
        serial = kernels.resize_stack(maps, 20, 11, method=method, parallel=False)
        parallel = kernels.resize_stack(maps, 20, 11, method=method, parallel=True)
        np.testing.assert_array_equal(serial, parallel)
        for i in range(len(maps)):
            np.testing.assert_array_equal(serial[i], kernels.resize(maps[i], 20, 11, method=method))
        # weights sum to one: a constant map stays constant
        np.testing.assert_allclose(kernels.resize(np.full((6, 8), 2.5), 31, 5, method=method), 2.5, atol=1e-6)
    # same size, half-pixel centres: the identity
    np.testing.assert_array_equal(kernels.resize(maps[0], 6, 8, "bilinear"), maps[0])
    np.testing.assert_array_equal(kernels.resize(maps[0], 6, 8, "bicubic", align_corners=True), maps[0])


def test_resize_errors():
    m = np.zeros((4, 4), np.float32)
    with pytest.raises(InputError, match="nearest, bilinear, bicubic"):
        kernels.resize(m, 8, 8, method="area")
    with pytest.raises(InputError, match="align_corners"):
        kernels.resize(m, 8, 8, method="nearest", align_corners=True)
    with pytest.raises(InputError, match="out_h"):
        kernels.resize(m, 0, 8)
    with pytest.raises(InputError, match=r"\(n, h, w\)"):
        kernels.resize_stack(m, 8, 8)


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------


def _weighted_problem(rng, n=150, k=12, binary=False):
    X = (rng.random((n, k)) < 0.5).astype(np.float64) if binary else rng.normal(size=(n, k))
    beta = rng.normal(size=k) * (rng.random(k) < 0.6)
    y = X @ beta + 0.3 + 0.2 * rng.normal(size=n)
    w = rng.random(n) * 2
    return X, y, w


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha", [1e-3, 0.5, 1.0, 25.0])
@pytest.mark.parametrize("binary", [True, False])
def test_weighted_ridge_matches_sklearn(rng, alpha, fit_intercept, binary):
    from sklearn.linear_model import Ridge

    X, y, w = _weighted_problem(rng, binary=binary)
    coef, intercept = kernels.weighted_ridge(X, y, w, alpha=alpha, fit_intercept=fit_intercept)
    ref = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(coef, ref.coef_, rtol=0, atol=1e-6)
    assert abs(intercept - ref.intercept_) < 1e-6


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha", [1e-3, 0.02, 0.1, 0.5])
@pytest.mark.parametrize("binary", [True, False])
def test_weighted_lasso_matches_sklearn(rng, alpha, fit_intercept, binary):
    from sklearn.linear_model import Lasso

    X, y, w = _weighted_problem(rng, binary=binary)
    coef, intercept = kernels.weighted_lasso(X, y, w, alpha=alpha, fit_intercept=fit_intercept,
                                             max_iter=100_000, tol=1e-10)
    ref = Lasso(alpha=alpha, fit_intercept=fit_intercept, max_iter=100_000, tol=1e-10).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(coef, ref.coef_, rtol=0, atol=1e-6)
    assert abs(intercept - ref.intercept_) < 1e-6
    if alpha >= 0.1:
        assert (coef == 0).any()  # the l1 penalty really zeroes coefficients


def test_weighted_r2_matches_sklearn(rng):
    from sklearn.metrics import r2_score

    X, y, w = _weighted_problem(rng)
    coef, intercept = kernels.weighted_ridge(X, y, w)
    r2 = kernels.weighted_r2(X, y, w, coef, intercept)
    assert abs(r2 - r2_score(y, X @ coef + intercept, sample_weight=w)) < 1e-12
    bad = rng.normal(size=coef.shape)
    assert abs(kernels.weighted_r2(X, y, w, bad, 0.0) - r2_score(y, X @ bad, sample_weight=w)) < 1e-12
    const = np.full(len(y), 2.0)
    assert kernels.weighted_r2(X, const, w, np.zeros(X.shape[1]), 2.0) == 1.0
    assert kernels.weighted_r2(X, const, w, np.zeros(X.shape[1]), 1.0) == 0.0


def test_ridge_singular_without_penalty_gives_minimum_norm(rng):
    X = np.ones((20, 3))  # all columns equal and constant
    y = rng.normal(size=20)
    coef, intercept = kernels.weighted_ridge(X, y, np.ones(20), alpha=0.0)
    assert np.isfinite(coef).all()
    np.testing.assert_allclose(coef, 0, atol=1e-12)
    assert abs(intercept - y.mean()) < 1e-12


def test_fit_errors():
    X = np.zeros((5, 2))
    with pytest.raises(InputError, match="one target per sample"):
        kernels.weighted_ridge(X, np.zeros(4), np.ones(5))
    with pytest.raises(InputError, match="weights must be >= 0"):
        kernels.weighted_lasso(X, np.zeros(5), -np.ones(5), alpha=0.1)
    with pytest.raises(InputError, match="alpha"):
        kernels.weighted_ridge(X, np.zeros(5), np.ones(5), alpha=-1)


def test_lime_kernel_weights_match_lime_formula(rng):
    from sklearn.metrics import pairwise_distances

    masks = kernels.random_binary_masks(300, 40, seed=5)
    masks[7] = 0  # an all-off sample: cosine distance 1 by scikit-learn's convention
    for width in (0.25, 1.0):
        # what lime 0.2.0.1's LimeImageExplainer computes
        d = pairwise_distances(masks, masks[0].reshape(1, -1), metric="cosine").ravel()
        ref = np.sqrt(np.exp(-(d**2) / width**2))
        got = kernels.lime_kernel_weights(masks, kernel_width=width)
        assert got.dtype == np.float64 and got.shape == (300,)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    got = kernels.lime_kernel_weights(masks)
    assert got[0] == pytest.approx(1.0) and got[7] == pytest.approx(math.exp(-8.0))
    soft = rng.random((10, 40))
    d = pairwise_distances(soft, np.ones((1, 40)), metric="cosine").ravel()
    np.testing.assert_allclose(kernels.lime_kernel_weights(soft), np.sqrt(np.exp(-(d**2) / 0.0625)), atol=1e-12)
