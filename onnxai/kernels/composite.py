"""Compositing: write perturbed copies of one input into a reused batch buffer.

Everything here works in the MODEL's input space (after normalisation).  For sample i and mask m_i

    out[i] = b + m_i * (x - b)        m = 1 keeps the input x, m = 0 shows the baseline b

computed as ``m * x + (1 - m) * b``: the same number mathematically, but exact at the ends, so a
binary mask reproduces x and b bit for bit (``b + 1 * (x - b)`` can be one ulp off x in float32).

    x         (C, H, W) float32   the normalised input
    baseline  (C, H, W) float32   what a hidden pixel shows (anything broadcastable is accepted)
    out       (n, C, H, W) float32, preallocated by the caller and reused chunk after chunk

``out`` may be any strided view (the engine passes ``buf.transpose(0, 3, 1, 2)`` for NHWC models):
Numba compiles one specialisation for C-contiguous arrays and one for any ('A') layout, so every
layout is correct and the contiguous one is fast.

Threads: serial by default, prange over samples with ``parallel=True``.  Measured on the 2-vCPU box
(tools/bench_kernels.py, 3x224x224, n = 4..64): while the second vCPU is idle the prange versions run
x1.6-2.4 faster; while anything else holds it (ONNX Runtime scoring the previous chunk, another
process) a prange call waits for it, ~8 ms per call under Numba's OpenMP layer, and runs x0.03-0.8 as
fast.  In the engine ONNX Runtime owns the cores, so the default stays serial and the kernels release
the GIL (``nogil=True``) so compositing can overlap inference in another Python thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from onnxai.errors import InputError
from onnxai.kernels._checks import _as_float32, _as_int32, _check_array, _check_out, _check_positive_int

# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _features_one(x, baseline, segments, mask_row, row_mask, out_i):
    # x, baseline, out_i: (C, H, W) float32; segments: (H, W) int32; mask_row: (k,) uint8|float32;
    # row_mask: (W,) float32 scratch.  The mask is gathered once per image row and reused for every
    # channel: 1.7x faster than gathering it per channel (11.7 -> 6.8 ms for 64x3x224x224).
    one = np.float32(1.0)
    C, H, W = x.shape
    for h in range(H):
        for w in range(W):
            row_mask[w] = np.float32(mask_row[segments[h, w]])
        for c in range(C):
            for w in range(W):
                m = row_mask[w]
                out_i[c, h, w] = m * x[c, h, w] + (one - m) * baseline[c, h, w]


@njit(cache=True, nogil=True)
def _soft_one(x, baseline, mask, out_i):
    # x, baseline, out_i: (C, H, W) float32; mask: (H, W) float32
    one = np.float32(1.0)
    C, H, W = x.shape
    for c in range(C):
        for h in range(H):
            for w in range(W):
                m = mask[h, w]
                out_i[c, h, w] = m * x[c, h, w] + (one - m) * baseline[c, h, w]


@njit(cache=True, nogil=True)
def _window_one(x, baseline, top, left, bottom, right, out_i):
    # x, baseline, out_i: (C, H, W) float32; pixels in [top, bottom) x [left, right) show the baseline
    C, H, W = x.shape
    top = min(max(top, 0), H)
    bottom = min(max(bottom, top), H)
    left = min(max(left, 0), W)
    right = min(max(right, left), W)
    for c in range(C):
        for h in range(H):
            if top <= h < bottom:
                for w in range(left):
                    out_i[c, h, w] = x[c, h, w]
                for w in range(left, right):
                    out_i[c, h, w] = baseline[c, h, w]
                for w in range(right, W):
                    out_i[c, h, w] = x[c, h, w]
            else:
                for w in range(W):
                    out_i[c, h, w] = x[c, h, w]


@njit(cache=True, nogil=True)
def _composite_features(x, baseline, segments, masks, out):
    # masks: (n, k) uint8|float32; out: (n, C, H, W) float32
    row_mask = np.empty(x.shape[2], dtype=np.float32)
    for i in range(out.shape[0]):
        _features_one(x, baseline, segments, masks[i], row_mask, out[i])


@njit(cache=True, nogil=True)
def _composite_soft(x, baseline, masks, out):
    # masks: (n, H, W) float32; out: (n, C, H, W) float32
    for i in range(out.shape[0]):
        _soft_one(x, baseline, masks[i], out[i])


@njit(cache=True, nogil=True)
def _composite_windows(x, baseline, windows, out):
    # windows: (n, 4) int32 [top, left, bottom, right]; out: (n, C, H, W) float32
    for i in range(out.shape[0]):
        _window_one(x, baseline, windows[i, 0], windows[i, 1], windows[i, 2], windows[i, 3], out[i])


# parallel=True (opt-in): x1.6-2.4 on 2 idle vCPUs, x0.03-0.8 when the other vCPU is busy (module docstring).
@njit(cache=True, nogil=True, parallel=True)
def _composite_features_parallel(x, baseline, segments, masks, out):
    for i in prange(out.shape[0]):
        row_mask = np.empty(x.shape[2], dtype=np.float32)
        _features_one(x, baseline, segments, masks[i], row_mask, out[i])


@njit(cache=True, nogil=True, parallel=True)
def _composite_soft_parallel(x, baseline, masks, out):
    for i in prange(out.shape[0]):
        _soft_one(x, baseline, masks[i], out[i])


@njit(cache=True, nogil=True, parallel=True)
def _composite_windows_parallel(x, baseline, windows, out):
    for i in prange(out.shape[0]):
        _window_one(x, baseline, windows[i, 0], windows[i, 1], windows[i, 2], windows[i, 3], out[i])


@njit(cache=True, nogil=True)
def _segment_means(image, segments, k):
    # image: (C, H, W) float32; segments: (H, W) int32 in [0, k) -> (C, k) float32
    C, H, W = image.shape
    sums = np.zeros((C, k), dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    for h in range(H):
        for w in range(W):
            s = segments[h, w]
            counts[s] += 1
            for c in range(C):
                sums[c, s] += image[c, h, w]
    means = np.zeros((C, k), dtype=np.float32)
    for s in range(k):
        if counts[s] > 0:
            for c in range(C):
                means[c, s] = sums[c, s] / counts[s]
    return means


@njit(cache=True, nogil=True)
def _fill_from_means(means, segments, out):
    # means: (C, k) float32; segments: (H, W) int32; out: (C, H, W) float32
    C, H, W = out.shape
    for c in range(C):
        for h in range(H):
            for w in range(W):
                out[c, h, w] = means[c, segments[h, w]]


# --------------------------------------------------------------------------------------------
# wrappers
# --------------------------------------------------------------------------------------------


def _image(value, name: str) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) float image -> (C, H, W) float32."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    arr = _check_array(arr, name, 3, "(C, H, W) or (1, C, H, W)")
    return _as_float32(arr, name)


def _baseline(value, x: np.ndarray) -> np.ndarray:
    """Anything broadcastable to x's (C, H, W) (a scalar, (C, 1, 1), (1, C, H, W), ...) -> (C, H, W) float32."""
    arr = np.asarray(value)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    try:
        arr = np.broadcast_to(arr, x.shape)
    except ValueError as exc:
        raise InputError(
            f"baseline of shape {np.shape(value)} does not broadcast to the input's shape {x.shape}; "
            "pass a scalar, a (C, 1, 1) per-channel value or a full (C, H, W) image"
        ) from exc
    arr = _as_float32(arr, "baseline")
    return np.ascontiguousarray(arr)


def _segments(value, height: int, width: int, k: int | None = None) -> np.ndarray:
    seg = _check_array(value, "segments", 2, "(H, W)")
    if seg.shape != (height, width):
        raise InputError(f"segments has shape {seg.shape} but the input is {height}x{width}; segment the same image")
    seg = _as_int32(seg, "segments")
    if seg.size and seg.min() < 0:
        raise InputError("segments must hold labels 0..k-1; found a negative label (relabel with features.from_labels)")
    if k is not None and seg.size and seg.max() >= k:
        raise InputError(
            f"segments has label {int(seg.max())} but masks have only {k} columns; "
            "each mask needs one column per segment (labels 0..k-1)"
        )
    return seg


def _out_batch(out, n: int, x: np.ndarray) -> np.ndarray:
    shape = (n,) + x.shape
    if out is None:
        return np.empty(shape, dtype=np.float32)
    return _check_out(out, "out", shape, np.float32)


def composite_features(x, baseline, segments, masks, out=None, parallel=False) -> np.ndarray:
    """Per-feature masks over a segment map: ``out[i] = b + masks[i, segments] * (x - b)``.

    x: (C, H, W) or (1, C, H, W) float32; baseline: broadcastable to x; segments: (H, W) int
    labels in [0, k); masks: (n, k) uint8/bool (binary) or float32 (soft, any value);
    out: (n, C, H, W) float32, any strides, or None to allocate.  Returns ``out``.
    parallel: prange over samples; only worth it when no other work holds the cores (module docstring).
    """
    x = _image(x, "x")
    b = _baseline(baseline, x)
    masks = _check_array(masks, "masks", 2, "(n, k)")
    if masks.dtype == np.bool_:
        masks = masks.view(np.uint8)
    elif masks.dtype != np.uint8:
        masks = _as_float32(masks, "masks")
    seg = _segments(segments, x.shape[1], x.shape[2], masks.shape[1])
    out = _out_batch(out, masks.shape[0], x)
    kernel = _composite_features_parallel if parallel else _composite_features
    kernel(x, b, seg, masks, out)
    return out


def composite_soft(x, baseline, masks, out=None, parallel=False) -> np.ndarray:
    """Per-pixel soft masks (Score-CAM, RISE): ``out[i] = b + masks[i] * (x - b)``.

    masks: (n, H, W) float32 (other real dtypes are cast, which copies); out: (n, C, H, W) float32.
    """
    x = _image(x, "x")
    b = _baseline(baseline, x)
    masks = _check_array(masks, "masks", 3, "(n, H, W)")
    if masks.shape[1:] != x.shape[1:]:
        raise InputError(
            f"masks are {masks.shape[1]}x{masks.shape[2]} but the input is {x.shape[1]}x{x.shape[2]}; "
            "resize the masks to the model's input size first (kernels.resize_stack)"
        )
    masks = _as_float32(masks, "masks")
    out = _out_batch(out, masks.shape[0], x)
    kernel = _composite_soft_parallel if parallel else _composite_soft
    kernel(x, b, masks, out)
    return out


def composite_windows(x, baseline, windows, out=None, parallel=False) -> np.ndarray:
    """Occlusion: pixels inside window i show the baseline, all others the input.

    windows: (n, 4) int [top, left, bottom, right], half-open, clipped to the image (see
    masks.sliding_windows); out: (n, C, H, W) float32.
    """
    x = _image(x, "x")
    b = _baseline(baseline, x)
    windows = _check_array(windows, "windows", 2, "(n, 4) [top, left, bottom, right]")
    if windows.shape[1] != 4:
        raise InputError(f"windows must have shape (n, 4) [top, left, bottom, right]; got {windows.shape}")
    windows = _as_int32(windows, "windows")
    out = _out_batch(out, windows.shape[0], x)
    kernel = _composite_windows_parallel if parallel else _composite_windows
    kernel(x, b, windows, out)
    return out


def segment_means(image, segments, k=None) -> np.ndarray:
    """Mean value of every channel inside every segment: (C, H, W), (H, W) -> (C, k) float32.

    ``k`` defaults to ``segments.max() + 1``; a label with no pixels gets mean 0.
    """
    image = _image(image, "image")
    seg = _segments(segments, image.shape[1], image.shape[2])
    if k is None:
        k = int(seg.max()) + 1 if seg.size else 0
    k = _check_positive_int(k, "k", minimum=0)
    if seg.size and seg.max() >= k:
        raise InputError(f"segments has label {int(seg.max())} but k={k}; pass k > the largest label")
    return _segment_means(image, seg, k)


def fill_from_segment_means(image, segments, out=None) -> np.ndarray:
    """Every pixel replaced by its segment's mean colour (LIME's default "hide" fill).

    image: (C, H, W) float32; segments: (H, W) int labels >= 0; returns (C, H, W) float32.
    """
    image = _image(image, "image")
    seg = _segments(segments, image.shape[1], image.shape[2])
    k = int(seg.max()) + 1 if seg.size else 0
    means = _segment_means(image, seg, k)
    if out is None:
        out = np.empty(image.shape, dtype=np.float32)
    else:
        out = _check_out(out, "out", image.shape, np.float32)
    _fill_from_means(means, seg, out)
    return out


@njit(cache=True, nogil=True)
def _composite_coalitions(x, background, masks, out):
    """out[i * b + j] = where(masks[i], x, background[j]): x (M,), background (b, M), masks (m, M), out (m*b, M)."""
    m, M = masks.shape
    b = background.shape[0]
    for i in range(m):
        for j in range(b):
            r = i * b + j
            for q in range(M):
                out[r, q] = x[q] if masks[i, q] else background[j, q]


def composite_coalitions(x, background, masks, out=None) -> np.ndarray:
    """Every coalition over every background row, written into ``out`` ((m * b, M), the model's dtype)."""
    masks = np.ascontiguousarray(masks, dtype=np.uint8)
    m, M = masks.shape
    b = background.shape[0]
    if out is None:
        out = np.empty((m * b, M), background.dtype)
    if out.shape != (m * b, M):
        raise InputError(f"out must have shape {(m * b, M)}; got {out.shape}")
    _composite_coalitions(x, background, masks, out)
    return out
