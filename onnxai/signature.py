"""Signature: what a model takes and which output holds its class scores, read from its session.

- ``InputSpec``: name, shape (None where dynamic), dtype, NCHW/NHWC layout (None when not an image)
  and whether the batch axis is dynamic;
- ``guess_layout``: channels-first or channels-last from a rank-4 shape;
- ``column_inputs``: a model with one 2-D input per column (skl2onnx can emit that) seen as one
  (batch, sum of widths) table, with the columns to split it back into;
- ``choose_class_output``: the rule when the graph has several outputs (unless ``output=`` names one):
  among the float tensors of rank 2 (or rank 4 with 1x1 spatial size), the one a Softmax produces,
  else one named like probabilities / logits / scores / output, else the first; and why;
- ``check_channels``: a picture is fed as 3 channels (RGB / BGR) or 1 (grey): the input must take that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError, ModelError
from .preprocess import MAX_SIDE

MAX_INPUT_ELEMENTS = 3 * MAX_SIDE * MAX_SIDE  # numbers in one input a declared shape may imply (768 MB float32)

DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}
FLOAT_TYPES = {"tensor(float)", "tensor(double)", "tensor(float16)"}


@dataclass(frozen=True)
class InputSpec:
    """The model's (single) input.

    shape: dims with None where dynamic; layout: "NCHW", "NHWC" or None when not an image.
    """

    name: str
    shape: tuple
    dtype: type
    layout: str | None
    dynamic_batch: bool

    @property
    def is_image(self) -> bool:
        return self.layout is not None

    @property
    def hw(self) -> tuple[int | None, int | None]:
        if self.layout == "NCHW":
            return self.shape[2], self.shape[3]
        if self.layout == "NHWC":
            return self.shape[1], self.shape[2]
        return (None, None)

    @property
    def channels(self) -> int | None:
        if self.layout == "NCHW":
            return self.shape[1]
        if self.layout == "NHWC":
            return self.shape[3]
        return None

    def describe(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        kind = self.layout or "not an image"
        return f"{self.name}: {dims} {np.dtype(self.dtype).name} ({kind}, {'dynamic' if self.dynamic_batch else 'fixed'} batch)"


def dim(d):
    """An onnxruntime shape entry -> int, or None where it is symbolic or unknown."""
    return d if isinstance(d, int) and d > 0 else None


def guess_layout(shape: tuple) -> str | None:
    if len(shape) != 4:
        return None
    c1, c3 = shape[1], shape[3]
    if c1 in (1, 3, 4) and c3 not in (1, 3, 4):
        return "NCHW"
    if c3 in (1, 3, 4) and c1 not in (1, 3, 4):
        return "NHWC"
    if c1 in (1, 3) and c3 in (1, 3):  # tiny pictures, e.g. 1x3x3x3: channels-first by convention
        return "NCHW"
    if c1 is None and c3 in (1, 3):
        return "NHWC"
    return "NCHW"


def column_inputs(ins, dtypes: dict = DTYPES):
    """Several inputs, each (batch, w) numeric -> (InputSpec of the whole (batch, sum w) table, columns)."""
    columns = []
    for i in ins:
        dtype = dtypes.get(i.type)
        if dtype is None:
            raise ModelError(
                f"input {i.name!r} has type {i.type}; onnxai feeds numeric tables only (encode strings "
                "and categories as numbers in the exported model)"
            )
        shape = list(i.shape)
        if len(shape) == 1:
            width = 1
        elif len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
            width = int(shape[1])
        else:
            raise ModelError(
                f"the model has several inputs and {i.name!r} is shaped {shape}; onnxai reads several inputs "
                "only as the columns of a table, each (batch, width) with a fixed width"
            )
        columns.append((i.name, dtype, width))
    total = sum(w for _, _, w in columns)
    dtype = np.float64 if any(d == np.float64 for _, d, _ in columns) else np.float32
    spec = InputSpec("+".join(c[0] for c in columns), (None, total), dtype, None, True)
    return spec, columns


def class_score_output(outs, softmax_fed=()):
    """The session's output that holds (batch, classes) scores, or None; see ``choose_class_output``."""
    return choose_class_output(outs, softmax_fed)[0]


_NAMES = (("probabilities", ("prob", "softmax")), ("logits", ("logit",)), ("scores", ("score", "output", "pred")))


def choose_class_output(outs, softmax_fed=()) -> tuple[object | None, str]:
    """(output, why) among the outputs that can hold (batch, classes) scores: float, rank 2 or rank 4
    with 1x1 spatial size. With several: one a Softmax produces (``softmax_fed``: their names), else
    one named like probabilities / logits / scores / output, else the first; ``why`` says which rule
    decided ("" when there was only one candidate)."""
    cands = [o for o in outs if o.type in FLOAT_TYPES
             and (len(o.shape) == 2 or (len(o.shape) == 4 and list(o.shape[2:]) == [1, 1]))]
    if len(cands) <= 1:
        return (cands[0] if cands else None), ""
    names = ", ".join(repr(o.name) for o in cands)
    for o in cands:
        if o.name in softmax_fed:
            return o, f"{len(cands)} float outputs could hold class scores ({names}); {o.name!r} ends in a Softmax"
    for kind, words in _NAMES:
        for o in cands:
            if any(w in o.name.lower() for w in words):
                return o, (f"{len(cands)} float outputs could hold class scores ({names}); {o.name!r} is named "
                           f"like {kind}")
    return cands[0], (f"{len(cands)} float outputs could hold class scores ({names}); none is named like "
                      f"probabilities or logits, so the first, {cands[0].name!r}, is used")


def check_input_size(name: str, shape: tuple) -> None:
    """Refuse a declared input whose one sample (batch axis aside) would exceed MAX_INPUT_ELEMENTS numbers:
    the probes and the chunk buffers are allocated from this shape."""
    n = 1
    for d in shape[1:]:
        n *= d or 1
    if n > MAX_INPUT_ELEMENTS:
        dims = "x".join("?" if d is None else str(d) for d in shape)
        raise ModelError(f"input {name!r} is declared {dims}: {n:,} numbers per input, above onnxai's limit of "
                         f"{MAX_INPUT_ELEMENTS:,} ({MAX_SIDE}x{MAX_SIDE} RGB); this is not a model onnxai can run")


def check_batch_size(batch_size) -> None:
    """None (the default) or a whole number of at least 1."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise InputError(f"batch_size must be a whole number of at least 1 (or None for the default), got {batch_size!r}")

def check_channels(spec_in: InputSpec, spec, source: str) -> None:
    """A picture becomes 3 channels (RGB / BGR) or 1 (grey, "L"): the model's input must take as many."""
    c = spec_in.channels
    if c is None:
        return
    if c not in (1, 3):
        raise ModelError(f"the model's input {spec_in.name!r} has {c} channels; onnxai feeds pictures as 3 (RGB or "
                         "BGR) or 1 (grey)")
    if (c == 1) != (spec.channels == "L"):
        raise InputError(f"the model's input takes {c} channel(s) but the preprocessing ({source}) gives "
                         f"{'one grey channel' if spec.channels == 'L' else spec.channels}; set channels "
                         f"{'L' if c == 1 else 'RGB or BGR'} (--channels)")
