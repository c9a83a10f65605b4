"""Fills: what hidden pixels show, described in picture terms and turned into the model's input space
with the model's own preprocessing, so they are right for any mean/std, channel order or layout:

    "mean"          every hidden pixel shows the picture's mean colour (MATLAB imageLIME, occlusion)
    "segment-mean"  every hidden superpixel shows its own mean colour (the lime package's default)
    "blur"          a Gaussian-blurred copy of the picture (``blur_sigma`` pixels)
    "black"         pixel value 0 in every channel
    "zero"          zero in the model's input space (the data set mean for mean/std normalisation)
    a number        that grey value (0..255) in every channel; "R,G,B" gives a colour
    an array        an (H, W, 3) uint8 baseline picture the size of the crop, or a model-space array
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .. import engine, kernels
from ..errors import InputError
from ..kernels._checks import check_number

FILLS = ("mean", "segment-mean", "blur", "black", "zero")
BLUR_SIGMA = 10.0  # pixels: the "blur" fill of the methods (the insertion metric starts from its own blur)
BLUR_SIGMA_MAX = 1000.0  # pixels: a wider blur is a flat picture


def make_fill(model, crop: np.ndarray, x: np.ndarray, fill, segments=None, blur_sigma: float = BLUR_SIGMA) -> np.ndarray:
    """The baseline in the model's input space, shaped like ``x`` (1, ...), float32 whatever the model's
    input dtype (the engine composites in float32 and casts, rounding for integer inputs)."""
    if isinstance(fill, np.ndarray):
        if fill.dtype == np.uint8 and fill.shape == crop.shape:
            return model.preprocess.normalise(fill).astype(np.float32)
        if fill.shape == x.shape or fill.shape == x.shape[1:]:
            return np.asarray(fill, np.float32).reshape(x.shape)
        raise InputError(
            f"a baseline picture must be {crop.shape} uint8 (the model's crop) or a model-space array "
            f"{x.shape}; got {fill.shape} {fill.dtype}"
        )
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):
        if not np.isfinite(fill):
            raise InputError(f"a grey fill is a number 0..255; got {fill!r}")
        pic = np.full_like(crop, np.uint8(np.clip(round(fill), 0, 255)))
        return model.preprocess.normalise(pic).astype(np.float32)
    if not isinstance(fill, str):
        raise InputError(f"fill must be one of {FILLS}, a grey value, 'R,G,B' or a picture; got {type(fill).__name__}")
    if "," in fill:
        try:
            rgb = [int(round(float(v))) for v in fill.split(",")]
        except (ValueError, OverflowError):  # 'a,b,c', 'nan,0,0', 'inf,0,0'
            rgb = []
        if len(rgb) != 3:
            raise InputError(f"a colour fill is 'R,G,B' with three numbers 0..255, got {fill!r}")
        pic = np.empty_like(crop)
        pic[...] = np.clip(rgb, 0, 255).astype(np.uint8)
        return model.preprocess.normalise(pic).astype(np.float32)
    if fill.replace(".", "", 1).isdigit():
        return make_fill(model, crop, x, float(fill), segments, blur_sigma)
    if fill == "mean":
        mean = crop.reshape(-1, 3).mean(axis=0)
        pic = np.broadcast_to(mean.astype(np.float32), crop.shape)
        # normalise the float picture directly (no rounding of the mean colour)
        return model.preprocess.normalise(pic).astype(np.float32)
    if fill == "black":
        return model.preprocess.normalise(np.zeros_like(crop)).astype(np.float32)
    if fill == "zero":
        return np.zeros(x.shape, np.float32)
    if fill == "blur":
        blur_sigma = check_number(blur_sigma, "blur_sigma", 0, BLUR_SIGMA_MAX)
        blurred = Image.fromarray(crop).filter(ImageFilter.GaussianBlur(radius=float(blur_sigma)))
        return model.preprocess.normalise(np.asarray(blurred)).astype(np.float32)
    if fill == "segment-mean":
        if segments is None:
            raise InputError("fill 'segment-mean' needs superpixels; use it with LIME or Kernel SHAP")
        pixels = np.ascontiguousarray(engine.channels_first(model, x), dtype=np.float32)
        filled = kernels.fill_from_segment_means(pixels, segments)
        out = filled if model.input.layout == "NCHW" else filled.transpose(1, 2, 0)
        return np.ascontiguousarray(out[None], dtype=np.float32)
    raise InputError(f"unknown fill {fill!r}; use one of {FILLS}, a grey value 0..255, 'R,G,B' or a picture")
