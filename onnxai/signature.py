"""Signature: what a model takes and which output holds its class scores, read from its session.

- ``InputSpec``: name, shape (None where dynamic), dtype, NCHW/NHWC layout (None when not an image)
  and whether the batch axis is dynamic;
- ``guess_layout``: channels-first or channels-last from a rank-4 shape;
- ``column_inputs``: a model with one 2-D input per column (skl2onnx can emit that) seen as one
  (batch, sum of widths) table, with the columns to split it back into;
- ``class_score_output``: the rule when the graph has several outputs (unless ``output=`` names one):
  the first output that is a float tensor of rank 2, or of rank 4 with 1x1 spatial size; ties go to
  the earlier output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ModelError

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


def class_score_output(outs):
    """The first of the session's outputs that can hold (batch, classes) scores, or None."""
    for o in outs:
        rank = len(o.shape)
        if o.type in FLOAT_TYPES and (rank == 2 or (rank == 4 and list(o.shape[2:]) == [1, 1])):
            return o
    return None
