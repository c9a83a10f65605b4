"""The argument checks every kernel wrapper shares: arrays of the right rank and dtype, output
buffers of the exact shape, positive integers, seeds and (rows, cols) pairs. Each raises
``InputError`` with a message that says what to pass instead. Imports nothing from the kernels.
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


def check_number(value, name: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A real number (not a bool, not NaN) within [low, high] (an open end with low_open / high_open)."""
    lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
    want = f"a number {' and '.join(b for b in (lo, hi) if b)}".rstrip()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or np.isnan(value):
        raise InputError(f"{name} must be {want}; got {value!r}")
    v = float(value)
    if (low is not None and (v < low or (low_open and v == low))) or \
            (high is not None and (v > high or (high_open and v == high))):
        raise InputError(f"{name} must be {want}; got {value!r}")
    return v


def check_seed(seed) -> int:
    """A seed for numpy's Generator: a non-negative integer (not a bool)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def pair(value, name: str) -> tuple[int, int]:
    """An int, a (rows, cols) pair of positive ints, or text "16", "16x8", "16,8"."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value, value)
    if isinstance(value, str):
        try:
            value = tuple(int(p) for p in value.lower().replace("x", ",").split(","))
        except ValueError:
            raise InputError(f"{name} must be a positive int or ROWSxCOLS, e.g. 16 or 16x8; got {value!r}") from None
        if len(value) == 1:
            value = value * 2
    try:
        a, b = value
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a positive int or a (rows, cols) pair of them; got {value!r}") from exc
    return _check_positive_int(a, name), _check_positive_int(b, name)
