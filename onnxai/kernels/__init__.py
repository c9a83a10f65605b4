"""Numba kernels: pure functions of arrays that every explanation method is built from.

    masks      random binary masks, sliding occlusion windows, RISE grid masks
    composite  the hot loop: perturbed inputs written into a reused buffer, x_i = b + m_i * (x - b)
    resize     torch-compatible nearest / bilinear / bicubic resizing of 2-D maps (``kernels.resize`` is
               the function; reach the module as ``from onnxai.kernels.resize import ...``)
    fit        weighted ridge, weighted lasso, weighted R^2, LIME's kernel weights

Each public function is a thin Python wrapper that checks its arguments (raising ``InputError`` with
a message that says what to pass instead), allocates the output when ``out`` is None, and calls a
``@njit(cache=True, nogil=True)`` kernel.  The argument checks shared by those wrappers live in
``_checks.py``, which the submodules import directly (never this package).
"""

from __future__ import annotations

from onnxai.kernels.composite import (
    composite_coalitions,
    composite_features,
    composite_soft,
    composite_windows,
    fill_from_segment_means,
    segment_means,
)
from onnxai.kernels.fit import (
    lime_kernel_weights,
    weighted_lasso,
    weighted_r2,
    weighted_ridge,
)
from onnxai.kernels.masks import (
    feature_masks_to_pixels,
    random_binary_masks,
    random_grid_masks,
    sliding_windows,
    window_masks,
)
from onnxai.kernels.resize import resize, resize_stack  # rebinds the name ``resize`` to the function

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
