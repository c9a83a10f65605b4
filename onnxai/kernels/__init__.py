"""Numba kernels: pure functions of arrays that every explanation method is built from.

    masks      random binary masks, sliding occlusion windows, RISE grid masks
    composite  the hot loop: perturbed inputs written into a reused buffer, x_i = b + m_i * (x - b)
    resize     torch-compatible nearest / bilinear / bicubic resizing of 2-D maps (``kernels.resize`` is
               the function; reach the module as ``from onnxai.kernels.resize import ...``)
    fit        weighted ridge, weighted lasso, weighted R^2, LIME's kernel weights

Each public function is a thin Python wrapper that checks its arguments (raising ``InputError`` with
a message that says what to pass instead), allocates the output when ``out`` is None, and calls a
``@njit(cache=True, nogil=True)`` kernel.  The argument checks shared by those wrappers live here,
above the submodule imports, so that the submodules can import them from the package.
"""

from __future__ import annotations

import numbers

import numpy as np

from onnxai.errors import InputError


def _check_array(value, name: str, ndim: int, shape_doc: str) -> np.ndarray:
    """Return ``value`` as an ndarray with ``ndim`` dimensions or raise InputError."""
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except Exception as exc:  # noqa: BLE001 - any conversion failure is the caller's input
            raise InputError(f"{name} must be an array of shape {shape_doc}; got {type(value).__name__}") from exc
    if value.ndim != ndim:
        raise InputError(f"{name} must have shape {shape_doc}; got an array of shape {value.shape}")
    return value


def _as_float32(value: np.ndarray, name: str) -> np.ndarray:
    """Read-only float input: cast numeric arrays to float32 (a copy only when the dtype differs)."""
    if value.dtype == np.float32:
        return value
    if value.dtype == np.bool_ or not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
        raise InputError(f"{name} must hold real numbers (float32 preferred); got dtype {value.dtype}")
    return value.astype(np.float32)


def _as_float64(value: np.ndarray, name: str) -> np.ndarray:
    if value.dtype == np.float64:
        return value
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_) or np.iscomplexobj(value):
        raise InputError(f"{name} must hold real numbers; got dtype {value.dtype}")
    return value.astype(np.float64)


def _as_int32(value: np.ndarray, name: str) -> np.ndarray:
    if value.dtype == np.int32:
        return value
    if not np.issubdtype(value.dtype, np.integer):
        raise InputError(f"{name} must hold integers (int32 preferred); got dtype {value.dtype}")
    return value.astype(np.int32)


def _check_out(out, name: str, shape: tuple, dtype) -> np.ndarray:
    """An output buffer must already have the exact shape and dtype: it is written in place, never copied."""
    if not isinstance(out, np.ndarray):
        raise InputError(f"{name} must be a numpy array of shape {shape} and dtype {np.dtype(dtype).name}, or None")
    if out.shape != tuple(shape):
        raise InputError(f"{name} has shape {out.shape}; it must be {tuple(shape)} (or pass out=None)")
    if out.dtype != dtype:
        raise InputError(f"{name} has dtype {out.dtype}; it must be {np.dtype(dtype).name} (or pass out=None)")
    if not out.flags.writeable:
        raise InputError(f"{name} is read-only; pass a writeable array (or out=None)")
    return out


def _check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


from onnxai.kernels.composite import (  # noqa: E402  (the checks above must exist first)
    composite_coalitions,
    composite_features,
    composite_soft,
    composite_windows,
    fill_from_segment_means,
    segment_means,
)
from onnxai.kernels.fit import (  # noqa: E402
    lime_kernel_weights,
    weighted_lasso,
    weighted_r2,
    weighted_ridge,
)
from onnxai.kernels.masks import (  # noqa: E402
    feature_masks_to_pixels,
    random_binary_masks,
    random_grid_masks,
    sliding_windows,
    window_masks,
)
from onnxai.kernels.resize import resize, resize_stack  # noqa: E402  (rebinds the name to the function)

__all__ = [
    "composite_coalitions",
    "composite_features",
    "composite_soft",
    "composite_windows",
    "segment_means",
    "fill_from_segment_means",
    "random_binary_masks",
    "feature_masks_to_pixels",
    "sliding_windows",
    "window_masks",
    "random_grid_masks",
    "resize",
    "resize_stack",
    "weighted_ridge",
    "weighted_lasso",
    "weighted_r2",
    "lime_kernel_weights",
]
