"""Which preprocessing a picture model gets, and from where: given, the model's metadata, read from its
graph (a normalisation it does itself, graph_input.py), or the default for its input type.

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
        found = None if raw or not inp.is_image else graph_preprocess(proto, inp.name, inp.layout, spec.channels == "L")
        if found:
            spec, source = spec.with_overrides(**found[0]), found[1]
        chosen = isinstance(preprocess, dict) and any(preprocess.get(k) is not None for k in ("scale", "mean", "std"))
        if inp.is_image and not chosen:  # the normalisation is a guess: say which
            note(f"the model carries no preprocessing metadata; {found[1] if found else f'the default is used: {how}'} "
                 "(`onnxai inspect MODEL` shows the spec; --mean, --std, --scale, --channels, --resize change it)")
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
