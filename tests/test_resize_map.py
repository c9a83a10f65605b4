"""kernels.resize_map is the one map resizer: layers.upsample's exact semantics, used by render and metrics."""

import numpy as np
import pytest

from onnxai import kernels, metrics, render
from onnxai.kernels.resize import resize_map

SHAPES = [((7, 7), (224, 224)), ((4, 6), (16, 15)), ((3, 5), (9, 25)), ((32, 32), (16, 16)), ((1, 1), (4, 4)),
          ((5, 3), (5, 3))]


def _old_upsample(lowres, h, w, align_corners=False):
    """methods/layers.upsample as it was written before resize_map existed."""
    return kernels.resize(np.ascontiguousarray(lowres, np.float64), h, w, method="bilinear",
                          align_corners=align_corners)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("src, dst", SHAPES)
def test_resize_map_equals_layers_upsample_bit_for_bit(src, dst, align_corners):
    from onnxai.methods.layers import upsample

    rng = np.random.default_rng(sum(src) + sum(dst))
    for dtype in (np.float32, np.float64):
        m = rng.standard_normal(src).astype(dtype)
        got = resize_map(m, *dst, align_corners=align_corners)
        assert got.dtype == np.float32 and got.shape == dst
        np.testing.assert_array_equal(got, _old_upsample(m, *dst, align_corners))
        np.testing.assert_array_equal(got, upsample(m, *dst, align_corners=align_corners))


def test_render_and_metrics_resize_with_resize_map(monkeypatch):
    m = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    m[0, 0] = np.nan  # both draw / rank a missing value as 0 once resized
    want = resize_map(np.nan_to_num(m), 16, 15)
    np.testing.assert_array_equal(render._fit_map(m, 16, 15), want)
    np.testing.assert_array_equal(metrics.fit_map(m, 16, 15), want)
    calls = []

    def spy(map_, h, w, align_corners=False):
        calls.append((map_.shape, h, w))
        return resize_map(map_, h, w, align_corners)

    monkeypatch.setattr(render, "resize_map", spy)
    monkeypatch.setattr(metrics.base, "resize_map", spy)
    render._fit_map(m, 8, 8)
    metrics.fit_map(m, 8, 9)
    assert calls == [((4, 6), 8, 8), ((4, 6), 8, 9)]
    assert render._fit_map(m, 4, 6) is m  # the right size already: untouched
