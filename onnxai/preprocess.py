"""Preprocessing as a small declarative spec, and image loading.

A ``Preprocess`` turns an RGB ``(H, W, 3) uint8`` picture into the model's input ``(1, C, S, S)`` (or
NHWC) float32 array: resize the shorter side, centre-crop, scale the 0..255 values, subtract the mean
and divide by the std per channel, reorder channels and axes. It matches torchvision's
``Resize(resize) + CenterCrop(crop) + ToTensor() + Normalize(mean, std)`` on PIL images, because it
uses the same Pillow resampling and the same rounding of sizes and crop offsets.

The spec travels inside the ONNX file as JSON under the metadata key ``onnxai.preprocess`` (written
by the export tool) so that a model explains itself with no extra files.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from .errors import InputError
from .safe_io import existing_file

METADATA_KEY = "onnxai.preprocess"
LABELS_KEY = "onnxai.labels"
SOURCE_KEY = "onnxai.source"

IMAGENET_CROP_FRACTION = 0.875  # without metadata: resize so that the crop is 87.5% of the short side (224/256)

# Images above this many pixels are refused unless the caller raises the limit (decompression bombs).
# Checked from the file's header by onnxai itself; Pillow's own guard (PIL.Image.MAX_IMAGE_PIXELS)
# stays as the application set it: onnxai never changes it.
DEFAULT_MAX_PIXELS = 100_000_000
# The largest side a preprocessing spec may ask for (resize, crop): a model's metadata is untrusted
# input, and resize=200000 would allocate a picture of tens of gigabytes.
MAX_SIDE = 8192

CHANNELS = ("RGB", "BGR", "L")
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, Pillow's "L": the grey a one-channel model sees

_INTERPOLATION = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Preprocess:
    """How a picture becomes the model's input.

    resize: the shorter side is resized to this many pixels (None: no resize before the crop; if
        there is no crop either, the picture is resized straight to the model's input size).
    crop: centre crop side (int) or (height, width); None means no crop.
    scale: the 0..255 pixel values are multiplied by this first (1/255 gives 0..1).
    mean, std: per channel, in the order of ``channels``: ``v = (pixel * scale - mean) / std``.
    channels: "RGB" or "BGR", the channel order the model expects, or "L" for a one-channel (grey)
        input: the picture's luma (ITU-R 601 weights 0.299, 0.587, 0.114, as Pillow's "L"), with one
        mean and one std.
    layout: "NCHW" or "NHWC".
    """

    resize: int | None = 256
    crop: int | tuple[int, int] | None = 224
    interpolation: str = "bilinear"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    channels: str = "RGB"
    layout: str = "NCHW"

    def __post_init__(self):
        _check_fields(self)
        if self.interpolation not in _INTERPOLATION:
            raise InputError(
                f"unknown interpolation {self.interpolation!r}; use one of {sorted(_INTERPOLATION)}"
            )
        if self.channels not in CHANNELS:
            raise InputError(f"channels must be 'RGB', 'BGR' or 'L' (grey), not {self.channels!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise InputError(f"layout must be 'NCHW' or 'NHWC', not {self.layout!r}")
        if self.channels == "L":  # one grey channel: one mean and one std (three equal ones are that one)
            for name in ("mean", "std"):
                v = tuple(float(x) for x in getattr(self, name))
                if len(set(v)) != 1:
                    raise InputError(f"a grey (channels 'L') input takes one {name}, got {list(v)}")
                object.__setattr__(self, name, v[:1])
        elif len(self.mean) != 3 or len(self.std) != 3:
            raise InputError("mean and std need three values, one per channel (R G B)")
        if any(float(s) == 0.0 for s in self.std):
            raise InputError("std values must be non-zero")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if isinstance(self.crop, (list, tuple)):
            object.__setattr__(self, "crop", (int(self.crop[0]), int(self.crop[1])))

    # ----------------------------------------------------------------- metadata round trip
    def to_json(self) -> str:
        d = asdict(self)
        if isinstance(self.crop, tuple):
            d["crop"] = list(self.crop)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str, source: str = "") -> "Preprocess":
        """A spec from JSON text; ``source`` (e.g. "the model's onnxai.preprocess metadata") starts the
        message of any error, which names the field that is wrong."""
        if source:
            try:
                return cls.from_json(text)
            except InputError as e:
                raise InputError(f"{source} is not usable: {e}") from None
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise InputError(f"the preprocessing spec is not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise InputError(f"the preprocessing spec must be a JSON object, not {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown preprocessing keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def with_overrides(self, **kw) -> "Preprocess":
        """A copy with the given fields replaced; ``None`` values are ignored, and ``resize=0`` or
        ``crop=0`` switch that step off (the CLI's ``--resize 0``)."""
        off = {k for k in ("resize", "crop") if kw.get(k) == 0}
        kw = {k: v for k, v in kw.items() if v is not None and k not in off}
        kw.update({k: None for k in off})
        return replace(self, **kw) if kw else self

    # ----------------------------------------------------------------- geometry
    def crop_size(self, input_hw: tuple[int | None, int | None] | None = None) -> tuple[int, int]:
        """(height, width) of the model input this spec produces."""
        if self.crop is not None:
            return (self.crop, self.crop) if isinstance(self.crop, int) else tuple(self.crop)
        if input_hw is not None and all(isinstance(v, int) and v > 0 for v in input_hw):
            return int(input_hw[0]), int(input_hw[1])
        if self.resize is not None:
            raise InputError(
                "the preprocessing has no crop and the model input size is dynamic: give --crop"
            )
        raise InputError("cannot tell the model's input size: give --size or --crop")

    def geometry(self, image_hw: tuple[int, int], input_hw=None) -> "CropBox":
        """Where the model's input window lies in the original picture."""
        h, w = image_hw
        ch, cw = self.crop_size(input_hw)
        if self.resize is None and self.crop is None:
            rh, rw = ch, cw
        elif self.resize is None:
            rh, rw = h, w
        else:
            # torchvision's rule for an int size: the shorter side becomes `resize`, the longer one
            # is scaled and truncated to int.
            short, long_ = (h, w) if h <= w else (w, h)
            new_short, new_long = self.resize, int(self.resize * long_ / short)
            rh, rw = (new_short, new_long) if h <= w else (new_long, new_short)
        # torchvision CenterCrop: offsets rounded half to even of (size - crop) / 2.
        top = int(round((rh - ch) / 2.0))
        left = int(round((rw - cw) / 2.0))
        return CropBox(image_hw=(h, w), resized_hw=(rh, rw), top=top, left=left, size=(ch, cw))

    # ----------------------------------------------------------------- apply
    def crop_image(self, image: np.ndarray, input_hw=None) -> np.ndarray:
        """The picture as the model sees it, before normalisation: (h, w, 3) uint8 RGB."""
        image = _check_rgb(image)
        box = self.geometry(image.shape[:2], input_hw)
        pil = Image.fromarray(image)
        if box.resized_hw != box.image_hw:
            pil = pil.resize((box.resized_hw[1], box.resized_hw[0]), _INTERPOLATION[self.interpolation])
        arr = np.asarray(pil)
        ch, cw = box.size
        top, left = box.top, box.left
        if top < 0 or left < 0 or top + ch > arr.shape[0] or left + cw > arr.shape[1]:
            # torchvision pads with zeros when the crop is larger than the picture
            padded = np.zeros((max(ch, arr.shape[0]) + 2 * max(0, -top), max(cw, arr.shape[1]) + 2 * max(0, -left), 3), np.uint8)
            oy, ox = max(0, -top), max(0, -left)
            padded[oy:oy + arr.shape[0], ox:ox + arr.shape[1]] = arr
            arr, top, left = padded, top + oy, left + ox
        return np.ascontiguousarray(arr[top:top + ch, left:left + cw])

    def normalise(self, crop: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 RGB -> (1, C, h, w) or (1, h, w, C) float32 model input."""
        v = crop.astype(np.float32) * np.float32(self.scale)
        if self.channels == "L":
            v = (v @ LUMA)[..., None]
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        v = (v - mean) / std
        if self.channels == "BGR":
            v = v[..., ::-1]
        if self.layout == "NCHW":
            v = v.transpose(2, 0, 1)
        return np.ascontiguousarray(v[None], dtype=np.float32)

    def to_input(self, crop: np.ndarray, dtype) -> np.ndarray:
        """``normalise``, cast to the model's input dtype (integers rounded, not truncated)."""
        v = self.normalise(crop)
        if np.issubdtype(np.dtype(dtype), np.integer):
            info = np.iinfo(dtype)
            return np.clip(np.rint(v), info.min, info.max).astype(dtype)
        return v.astype(dtype, copy=False)

    def check_dtype(self, dtype) -> None:
        """An integer input holds whole numbers: every pixel value 0..255 must map to one in its range."""
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.integer):
            return
        p = np.arange(256, dtype=np.float64)[:, None] * self.scale
        v = (p - np.asarray(self.mean)) / np.asarray(self.std)
        info = np.iinfo(dtype)
        if np.abs(v - np.rint(v)).max() > 1e-3 or v.min() < info.min or v.max() > info.max:
            raise InputError(
                f"the model's input is {dtype.name} but the preprocessing (scale {self.scale:g}, mean "
                f"{list(self.mean)}, std {list(self.std)}) maps pixels to values from {v.min():.3g} to "
                f"{v.max():.3g}{'' if np.abs(v - np.rint(v)).max() <= 1e-3 else ', not whole numbers'}, which "
                f"{dtype.name} cannot hold; an integer input takes raw pixels: --scale 1 --mean 0 --std 1 "
                "(the default for integer inputs without metadata)")

    @classmethod
    def default_for(cls, hw, layout, dtype, channels: int | None = 3) -> "Preprocess":
        """Without metadata: a crop of the input size after resizing to crop / 0.875 (ImageNet's
        224/256), ImageNet's mean/std for a float input, raw 0..255 pixels for an integer one; a
        one-channel input gets the picture's luma, 0..1 for a float input (torchvision's ToTensor)."""
        raw = dict(scale=1.0, mean=(0.0,) * 3, std=(1.0,) * 3) if np.issubdtype(np.dtype(dtype), np.integer) else {}
        if channels == 1:
            raw = dict(raw or dict(mean=(0.0,), std=(1.0,)), channels="L")
        h, w = hw
        if h and w:
            return cls(resize=int(round(min(h, w) / IMAGENET_CROP_FRACTION)), crop=h if h == w else (h, w),
                       layout=layout, **raw)
        return cls(layout=layout, **raw)

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        """Model input (1 or no batch axis) -> (h, w, 3) uint8 RGB picture; inverse of ``normalise``."""
        x = np.asarray(x, np.float32)
        if x.ndim == 4:
            x = x[0]
        if self.layout == "NCHW":
            x = x.transpose(1, 2, 0)
        if self.channels == "BGR":
            x = x[..., ::-1]
        v = (x * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)) / np.float32(self.scale)
        if v.shape[-1] == 1:  # grey: the same value in R, G and B
            v = np.repeat(v, 3, axis=-1)
        return np.clip(np.rint(v), 0, 255).astype(np.uint8)

    def __call__(self, image: np.ndarray, input_hw=None) -> np.ndarray:
        return self.normalise(self.crop_image(image, input_hw))


def _check_fields(spec) -> None:
    """Every field of a spec (from a model's metadata: untrusted) has a usable type and range; the
    error names the field. Sizes lie in 1..MAX_SIDE, scale/mean/std are finite, std is non-zero."""

    def side(name, v, allow_none=True):
        if v is None and allow_none:
            return
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= int(v) <= MAX_SIDE:
            raise InputError(f"preprocessing field {name!r} must be a whole number of pixels in 1..{MAX_SIDE}, "
                             f"got {v!r}")

    side("resize", spec.resize)
    if isinstance(spec.crop, (list, tuple)):
        if len(spec.crop) != 2:
            raise InputError(f"preprocessing field 'crop' must be one size or (height, width), got {spec.crop!r}")
        for v in spec.crop:
            side("crop", v, allow_none=False)
    else:
        side("crop", spec.crop)
    for name in ("interpolation", "channels", "layout"):
        if not isinstance(getattr(spec, name), str):
            raise InputError(f"preprocessing field {name!r} must be text, got {getattr(spec, name)!r}")

    def finite(name, v):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
            raise InputError(f"preprocessing field {name!r} must hold finite numbers, got {v!r}")

    finite("scale", spec.scale)
    if float(spec.scale) == 0.0:
        raise InputError("preprocessing field 'scale' must be non-zero")
    for name in ("mean", "std"):
        v = getattr(spec, name)
        if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) not in ((1, 3) if spec.channels == "L" else (3,)):
            raise InputError(f"preprocessing field {name!r} needs three numbers, one per channel (R G B), or one for a "
                             f"grey input, got {v!r}")
        for x in v:
            finite(name, x)
    if any(float(s) == 0.0 for s in spec.std):
        raise InputError("preprocessing field 'std': std values must be non-zero")


@dataclass(frozen=True)
class CropBox:
    """The model input window in picture coordinates: resize to ``resized_hw``, then crop."""

    image_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    top: int
    left: int
    size: tuple[int, int]

    def to_image(self, map_: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Place a (h, w) map drawn on the crop back onto the original picture's grid.

        Pixels outside the crop get ``fill``. Uses bilinear resampling of the map.
        """
        h, w = self.image_hw
        rh, rw = self.resized_hw
        ch, cw = self.size
        canvas = np.full((rh, rw), fill, np.float32)
        y0, x0 = max(self.top, 0), max(self.left, 0)
        y1, x1 = min(self.top + ch, rh), min(self.left + cw, rw)
        canvas[y0:y1, x0:x1] = np.asarray(map_, np.float32)[y0 - self.top:y1 - self.top, x0 - self.left:x1 - self.left]
        if (rh, rw) == (h, w):
            return canvas
        img = Image.fromarray(canvas, mode="F").resize((w, h), Image.Resampling.BILINEAR)
        return np.asarray(img, np.float32)


def _check_rgb(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(
            f"expected an RGB picture as a (height, width, 3) uint8 array, got shape {image.shape} "
            f"dtype {image.dtype}; use onnxai.load_image(path) to read a file"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError("the picture is empty")
    return image


def load_image(source, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a picture file (JPEG, PNG, BMP, TIFF, WebP, GIF, ...) as an RGB (H, W, 3) uint8 array.

    Greyscale, palette, CMYK and alpha pictures are converted to RGB (alpha is composited on white),
    the EXIF orientation is applied, and pictures larger than ``max_pixels`` are refused before they
    are decoded (None lifts the limit). A numpy array is accepted and checked as well.
    """
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[..., :3]
        return _check_rgb(arr)
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"a picture is a file path or an (H, W, 3) uint8 array; got {type(source).__name__}")
    path = existing_file(source, "image file")
    try:
        size = _header_size(path)  # from the header alone, before Pillow's own guard or any decoding
        n = size[0] * size[1] if size else 0
        if max_pixels is not None and n > max_pixels:
            raise InputError(
                f"{path} is {size[0]}x{size[1]} = {n:,} pixels, above the limit of "
                f"{max_pixels:,} (a guard against decompression bombs); shrink the image "
                "or raise the limit (max_pixels=None / --max-pixels N)"
            )
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im = _to_rgb(im)
            arr = np.asarray(im, dtype=np.uint8)
    except InputError:
        raise
    except Image.DecompressionBombError as e:  # Pillow's own guard, as the application set it
        raise InputError(f"{path}: Pillow refuses it as a possible decompression bomb ({e}); onnxai leaves "
                         "Pillow's limit (PIL.Image.MAX_IMAGE_PIXELS) to the application") from None
    except (OSError, SyntaxError, ValueError, struct.error) as e:
        raise InputError(f"cannot read {path} as an image ({e}); give a JPEG, PNG, BMP, TIFF or WebP file") from None
    return np.ascontiguousarray(arr)


def _header_size(path) -> tuple[int, int] | None:
    """(width, height) read by the matching Pillow plugin from the file's header (what Image.open does,
    without its process-wide decompression-bomb check and without decoding); None when no plugin reads it."""
    Image.init()
    with open(path, "rb") as fp:
        prefix = fp.read(16)
        for fmt in Image.ID:
            factory, accept = Image.OPEN[fmt]
            try:  # some plugins' checks unpack more bytes than a tiny file has
                if accept is not None and not accept(prefix):
                    continue
            except (IndexError, TypeError, ValueError, struct.error):
                continue
            fp.seek(0)
            try:
                im = factory(fp, str(path))
            except (SyntaxError, IndexError, TypeError, ValueError, OSError, EOFError, struct.error):
                continue
            return im.size
    return None


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "RGBa"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale: 0..65535 -> 0..255, whatever the content
        arr = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(arr / 65535.0 * 255.0), 0, 255).astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def parse_floats(text: str | Sequence[float] | None, n: int = 3, what: str = "value") -> tuple[float, ...] | None:
    """'0.5,0.5,0.5' or '0.5 0.5 0.5' -> (0.5, 0.5, 0.5); a single number is repeated n times."""
    if text is None:
        return None
    if isinstance(text, str):
        parts = [p for p in text.replace(",", " ").split() if p]
    else:
        parts = list(text)
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"{what} must be numbers separated by commas, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n:
        raise InputError(f"{what} needs {n} numbers (one per channel), got {len(vals)}")
    return vals
