"""Resizing of 2-D maps (CAMs, activations, RISE grids) with torch.nn.functional.interpolate's conventions.

For an axis of ``n_in`` input and ``n_out`` output samples, output index ``d`` reads source position

    align_corners=False   src = (d + 0.5) * n_in / n_out - 0.5       (half-pixel centres)
    align_corners=True    src = d * (n_in - 1) / (n_out - 1)         (0 when n_out == 1)

    nearest   index floor(d * n_in / n_out), with the scale and product in float32 exactly like torch's
              'nearest' (not 'nearest-exact'); align_corners is not allowed, as in torch
    bilinear  src clamped at 0 below; taps floor(src) and the next one (the last index repeats at the
              border); weights 1 - t and t with t = src - floor(src)
    bicubic   src not clamped; taps floor(src) - 1 .. floor(src) + 2 with indices clamped to the
              border; Keys' cubic convolution with a = -0.75 (torch's choice, not a = -0.5)

Resizing is separable: each axis gets a table of (at most 4) taps and weights, rows are resized along
the width first, then along the height, the order torch uses.  Positions, weights and sums are float64
and the result is float32; torch sums float32 maps in float32, so results agree to ~1e-6 of the map's
range (bit for bit for 'nearest').  Downsampling uses the same formulas (no antialiasing), again like torch.

``resize_map`` is the bilinear resizer every map of onnxai goes through (methods, metrics, pictures).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from onnxai.errors import InputError
from onnxai.kernels._checks import _as_float64, _check_array, _check_out, _check_positive_int

METHODS = ("nearest", "bilinear", "bicubic")
_METHOD_CODE = {"nearest": 0, "bilinear": 1, "bicubic": 2}
_CUBIC_A = -0.75
# resize_stack uses its prange kernel when the output holds at least this many values (see below).
PARALLEL_MIN_VALUES = 8_000_000


@njit(cache=True, nogil=True)
def _cubic_weights(t):
    # Keys' cubic convolution weights for the taps at offsets -1, 0, 1, 2 from floor(src); t in [0, 1]
    a = _CUBIC_A
    out = np.empty(4, dtype=np.float64)
    x = t + 1.0  # 1 <= x <= 2
    out[0] = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    x = t  # 0 <= x <= 1
    out[1] = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    x = 1.0 - t
    out[2] = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    x = 2.0 - t
    out[3] = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return out


@njit(cache=True, nogil=True)
def _axis_taps(n_in, n_out, method, align_corners):
    """Source indices and weights for one axis -> idx (n_out, 4) int64, wts (n_out, 4) float64, n_taps.

    'nearest' computes its index in float32 exactly like torch (a float64 product can land on the
    other side of an integer); linear and cubic positions and weights are float64.
    """
    idx = np.zeros((n_out, 4), dtype=np.int64)
    wts = np.zeros((n_out, 4), dtype=np.float64)
    if method == 0:  # nearest
        scale32 = np.float32(n_in) / np.float32(n_out)
        for d in range(n_out):
            if n_out == n_in:
                s = d
            else:
                s = int(math.floor(np.float32(d) * scale32))
            idx[d, 0] = min(s, n_in - 1)
            wts[d, 0] = 1.0
        return idx, wts, 1
    if align_corners:
        scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        scale = n_in / n_out
    for d in range(n_out):
        if align_corners:
            src = scale * d
        else:
            src = scale * (d + 0.5) - 0.5
        if method == 1:
            if src < 0.0:
                src = 0.0
            i0 = min(int(math.floor(src)), n_in - 1)
            t = min(max(src - i0, 0.0), 1.0)
            idx[d, 0] = i0
            idx[d, 1] = i0 + 1 if i0 < n_in - 1 else i0
            wts[d, 0] = 1.0 - t
            wts[d, 1] = t
        else:
            i0 = min(int(math.floor(src)), n_in - 1)
            t = min(max(src - i0, 0.0), 1.0)
            cw = _cubic_weights(t)
            for j in range(4):
                idx[d, j] = min(max(i0 - 1 + j, 0), n_in - 1)
                wts[d, j] = cw[j]
    n_taps = 2 if method == 1 else 4
    return idx, wts, n_taps


@njit(cache=True, nogil=True)
def _resize_one(src, iy, wy, ix, wx, n_taps, tmp, out):
    # src: (h, w) float; iy, wy: (out_h, 4); ix, wx: (out_w, 4); tmp: (h, out_w) float64; out: (out_h, out_w)
    h = src.shape[0]
    out_h, out_w = out.shape
    for r in range(h):  # along the width first
        for j in range(out_w):
            acc = 0.0
            for b in range(n_taps):
                acc += wx[j, b] * src[r, ix[j, b]]
            tmp[r, j] = acc
    for i in range(out_h):  # then along the height
        for j in range(out_w):
            acc = 0.0
            for a in range(n_taps):
                acc += wy[i, a] * tmp[iy[i, a], j]
            out[i, j] = acc


@njit(cache=True, nogil=True)
def _resize_map(src, out, method, align_corners):
    h, w = src.shape
    out_h, out_w = out.shape
    iy, wy, n_taps = _axis_taps(h, out_h, method, align_corners)
    ix, wx, _ = _axis_taps(w, out_w, method, align_corners)
    tmp = np.empty((h, out_w), dtype=np.float64)
    _resize_one(src, iy, wy, ix, wx, n_taps, tmp, out)


@njit(cache=True, nogil=True)
def _resize_stack_serial(maps, out, method, align_corners):
    # maps: (n, h, w) float; out: (n, out_h, out_w) float32
    n, h, w = maps.shape
    out_h, out_w = out.shape[1], out.shape[2]
    iy, wy, n_taps = _axis_taps(h, out_h, method, align_corners)
    ix, wx, _ = _axis_taps(w, out_w, method, align_corners)
    tmp = np.empty((h, out_w), dtype=np.float64)
    for i in range(n):
        _resize_one(maps[i], iy, wy, ix, wx, n_taps, tmp, out[i])


# parallel=True: maps are independent and resizing is compute-bound.  On the 2-vCPU box
# (tools/bench_kernels.py --only resize) 128-512 maps 7x7 -> 224x224 ran x1.8-2.3 faster with prange
# (one bilinear run x1.0-1.3); but a prange call can pay a ~8 ms OpenMP wake-up, which sinks small
# stacks, so resize_stack only takes this path from PARALLEL_MIN_VALUES output values (~160 maps
# of 224x224, >= 10 ms serially).
@njit(cache=True, nogil=True, parallel=True)
def _resize_stack_parallel(maps, out, method, align_corners):
    n, h, w = maps.shape
    out_h, out_w = out.shape[1], out.shape[2]
    iy, wy, n_taps = _axis_taps(h, out_h, method, align_corners)
    ix, wx, _ = _axis_taps(w, out_w, method, align_corners)
    for i in prange(n):
        tmp = np.empty((h, out_w), dtype=np.float64)
        _resize_one(maps[i], iy, wy, ix, wx, n_taps, tmp, out[i])


def _method_code(method: str, align_corners: bool) -> int:
    if method not in _METHOD_CODE:
        raise InputError(f"unknown resize method {method!r}; use one of {', '.join(METHODS)}")
    if method == "nearest" and align_corners:
        raise InputError("align_corners=True only applies to 'bilinear' and 'bicubic' (as in torch); drop it for 'nearest'")
    return _METHOD_CODE[method]


def _float_maps(value, name: str, ndim: int, shape_doc: str) -> np.ndarray:
    arr = _check_array(value, name, ndim, shape_doc)
    if arr.dtype not in (np.float32, np.float64):
        arr = _as_float64(arr, name)
    if 0 in arr.shape[-2:]:
        raise InputError(f"{name} has an empty side (shape {arr.shape}); each map needs at least one pixel")
    return arr


def resize(map, out_h, out_w, method="bilinear", align_corners=False, out=None) -> np.ndarray:
    """Resize one 2-D map: (h, w) float32/float64 -> (out_h, out_w) float32 (torch conventions, see module)."""
    src = _float_maps(map, "map", 2, "(h, w)")
    out_h = _check_positive_int(out_h, "out_h")
    out_w = _check_positive_int(out_w, "out_w")
    code = _method_code(method, bool(align_corners))
    if out is None:
        out = np.empty((out_h, out_w), dtype=np.float32)
    else:
        out = _check_out(out, "out", (out_h, out_w), np.float32)
    _resize_map(src, out, code, bool(align_corners))
    return out


def resize_stack(maps, out_h, out_w, method="bilinear", align_corners=False, out=None, parallel=None) -> np.ndarray:
    """Resize a stack of maps: (n, h, w) float32/float64 -> (n, out_h, out_w) float32.

    ``parallel=None`` runs a prange over maps when the output has at least PARALLEL_MIN_VALUES values
    and serially below; True / False force either kernel.
    """
    src = _float_maps(maps, "maps", 3, "(n, h, w)")
    out_h = _check_positive_int(out_h, "out_h")
    out_w = _check_positive_int(out_w, "out_w")
    code = _method_code(method, bool(align_corners))
    shape = (src.shape[0], out_h, out_w)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    else:
        out = _check_out(out, "out", shape, np.float32)
    if parallel is None:
        parallel = out.size >= PARALLEL_MIN_VALUES and src.shape[0] > 1
    if parallel:
        _resize_stack_parallel(src, out, code, bool(align_corners))
    else:
        _resize_stack_serial(src, out, code, bool(align_corners))
    return out


def resize_map(map_, h, w, align_corners=False) -> np.ndarray:
    """One map to (h, w) float32: bilinear, torch's F.interpolate conventions, computed on float64 values.

    The one map resizer of onnxai: methods upsampling coarse maps (CAMs, grids), metrics fitting a
    map to the model's input, and pictures drawing it over the crop all call this, so a map means
    the same pixels everywhere (borders included). NaN is not replaced: callers that draw or rank
    pass ``np.nan_to_num(map_)``.
    """
    return resize(np.ascontiguousarray(map_, np.float64), h, w, method="bilinear", align_corners=align_corners)
