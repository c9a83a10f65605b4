"""Which preprocessing a picture model gets, and from where: given, the model's onnxai metadata, the ONNX
image metadata (``Image.BitmapPixelFormat`` / ``Image.NominalPixelRange``, onnx/docs/MetadataProps.md, which
Windows ML tools and Custom Vision write), read from its graph (a normalisation it does itself,
graph_input.py), or the default for its input type.

    preprocess_for(proto, metadata, input_spec, preprocess) -> (Preprocess, source)

``preprocess``: a Preprocess (used as it is), a dict of overrides (None values ignored), or None. A
picture model whose preprocessing was not given nor in its metadata says once on stderr what it is fed,
since a wrong guess gives confident maps of the wrong thing rather than an error.
"""

from __future__ import annotations

import numpy as np

from ._log import note
from .graph_input import graph_preprocess, input_affine, pixel_scale
from .preprocess import METADATA_KEY, Preprocess
from .signature import InputSpec, check_channels


def preprocess_for(proto, meta: dict, inp: InputSpec, preprocess) -> tuple[Preprocess, str]:
    if isinstance(preprocess, Preprocess):
        spec, source = preprocess, "given"
    elif METADATA_KEY in meta:
        spec = Preprocess.from_json(meta[METADATA_KEY], source=f"the model's {METADATA_KEY} metadata")
        source = "model metadata"
        normalises = any(v != 0 for v in spec.mean) or any(v != 1 for v in spec.std)
        if inp.is_image and normalises and not np.issubdtype(inp.dtype, np.integer):
            affine = input_affine(proto, inp.name, inp.layout)
            if affine is not None and pixel_scale(affine) is not None:
                note(f"the model's metadata normalises pictures (mean {list(spec.mean)}, std {list(spec.std)}) and its "
                     f"graph normalises its input too ({affine.describe()}): if that is one normalisation done twice, "
                     "give --mean 0,0,0 --std 1,1,1")
    else:
        spec = Preprocess.default_for(inp.hw, inp.layout or "NCHW", inp.dtype, inp.channels)
        raw = np.issubdtype(inp.dtype, np.integer)
        how = ('raw pixels: an integer input' if raw else '0..1 pixels' if spec.channels == "L"
               else 'ImageNet mean/std') + ("; grey: the picture's luma" if spec.channels == "L" else "")
        source = f"default ({how}; the model carries no spec)"
        grey = spec.channels == "L"
        found = onnx_image_metadata(meta, grey, raw) if inp.is_image else None
        ranged = found is not None and "scale" in found[0]  # ONNX's metadata named the pixel range
        if found is None and not raw and inp.is_image:
            found = graph_preprocess(proto, inp.name, inp.layout, grey)
        if found:
            spec, source = spec.with_overrides(**found[0]), found[1]
        chosen = isinstance(preprocess, dict) and any(preprocess.get(k) is not None for k in ("scale", "mean", "std"))
        if inp.is_image and not ranged and not chosen:  # the normalisation is a guess: say which
            guess = found[1] if found and "scale" in found[0] else f"the default is used: {how}"
            note(f"the model carries no preprocessing metadata; {guess} (`onnxai inspect MODEL` shows the spec; "
                 "--mean, --std, --scale, --channels, --resize change it)")
    if isinstance(preprocess, dict):
        spec = spec.with_overrides(**preprocess)
        if any(v is not None for v in preprocess.values()):
            source += ", with overrides"
    if inp.is_image and spec.layout != inp.layout and METADATA_KEY not in meta:
        spec = spec.with_overrides(layout=inp.layout)
    if inp.is_image:
        spec.check_dtype(inp.dtype)
        check_channels(inp, spec, source)
    return spec, source


# ONNX's image metadata: the nominal range -> (scale, mean, std) of Preprocess, v = (pixel * scale - mean) / std
_RANGES = {"nominalrange_0_255": (1.0, 0.0, 1.0), "normalized_0_1": (1 / 255, 0.0, 1.0),
           "normalized_1_1": (1 / 255, 0.5, 0.5), "nominalrange_16_235": (219 / 255, -16.0, 1.0)}
_FORMATS = {"rgb8": "RGB", "bgr8": "BGR", "gray8": "L"}


def onnx_image_metadata(meta: dict, grey: bool, integer: bool = False) -> tuple[dict, str] | None:
    """Preprocessing fields from ONNX's image metadata (keys and values case-insensitive), with a line for
    the source; None without it. Values it does not define are ignored with a note (untrusted input), and
    so is a range other than 0..255 for an integer input (it holds raw pixels)."""
    lower = {str(k).lower(): str(v) for k, v in meta.items()}
    fmt, rng = lower.get("image.bitmappixelformat"), lower.get("image.nominalpixelrange")
    if fmt is None and rng is None:
        return None
    fields, said = {}, []
    if rng is not None:
        if integer and rng.lower() != "nominalrange_0_255":
            note(f"ignoring the model's Image.NominalPixelRange metadata {rng[:40]!r}: its input is an integer "
                 "type, fed raw 0..255 pixels")
        elif rng.lower() in _RANGES:
            scale, mean, std = _RANGES[rng.lower()]
            n = 1 if grey else 3
            fields.update(scale=scale, mean=(mean,) * n, std=(std,) * n)
            said.append(f"Image.NominalPixelRange={rng}")
        else:
            note(f"ignoring the model's Image.NominalPixelRange metadata {rng[:40]!r} (not one ONNX defines)")
    if fmt is not None:
        if fmt.lower() in _FORMATS and (_FORMATS[fmt.lower()] == "L") == grey:
            fields["channels"] = _FORMATS[fmt.lower()]
            said.append(f"Image.BitmapPixelFormat={fmt}")
        else:
            note(f"ignoring the model's Image.BitmapPixelFormat metadata {fmt[:40]!r} (not Rgb8, Bgr8 or Gray8 "
                 f"matching its {'one' if grey else 'three'}-channel input)")
    if lower.get("image.colorspacegamma", "srgb").lower() == "linear" and said:
        note("the model's metadata asks for linear-gamma pixels; onnxai feeds the picture's sRGB values")
    return (fields, f"the model's ONNX image metadata ({', '.join(said)})") if said else None
