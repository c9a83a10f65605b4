"""The normalisation a graph does to its own picture input, read from the ops right after the input.

Keras models exported with tf2onnx often carry their preprocessing inside the graph: a Rescaling layer
(x / 255, or x / 127.5 - 1) and a Normalization layer ((x - mean) / std) sit between the input and
the first convolution, and the model wants raw 0..255 pixels. A torch model exported together with
its Normalize does the same to 0..1 pixels. Without metadata onnxai would feed either of them
ImageNet-normalised values, and the maps would be confident and wrong, with no error to say so.

    input_affine(proto, name, layout)  ->  InputAffine(a, b) or None
    pixel_scale(affine)                ->  255 or 1 (the pixel range the graph expects), or None

``input_affine`` follows the input through elementwise Mul / Div / Add / Sub with a constant operand
(one value, or one per channel on the channel axis), past Transpose, Cast, Identity, Resize (a
Keras Resizing layer first) and quantization's QuantizeLinear / DequantizeLinear, and returns
the per-channel map v -> a v + b those ops compute, in the input's channel order. ``pixel_scale``
says which input range that map turns into a normalised one (every channel's image of [0, S] spans
at least 0.5 and stays within +-5), when the ops scale the values or subtract a mean from them (an Add
of a small bias alone proves nothing). The two candidates differ 255-fold, so at most one can pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from .graph import _attr, _const_value, _producers

_AFFINE = {"Mul", "Div", "Add", "Sub"}
# a Resize's weights sum to 1, so it commutes with a per-channel affine map; a QuantizeLinear /
# DequantizeLinear pair (onnxruntime's QDQ quantization wraps every op in one) only rounds the values
_PASS = {"Identity", "Cast", "Resize", "QuantizeLinear", "DequantizeLinear"}
_SHAPE_READERS = {"Shape", "Size"}  # consumers that read the input's shape, not its values
MAX_STEPS = 32  # ops followed before giving up (a model's graph is untrusted)
NORMAL_SPAN, NORMAL_BOUND = 0.5, 5.0  # a normalised channel spans at least this much, within +-bound
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])  # R, G, B (torchvision's)
MEAN_TOLERANCE = 0.015  # of the pixel range: how close in-graph means must be to ImageNet's to read the order


@dataclass(frozen=True)
class InputAffine:
    """v -> a * v + b per input channel (length C, or 1 when every op was a scalar); ops: what was read."""

    a: np.ndarray
    b: np.ndarray
    ops: tuple[str, ...]

    def describe(self) -> str:
        def vec(v):
            return "/".join(f"{x:.4g}" for x in v)
        return f"{' -> '.join(self.ops)}: v * {vec(self.a)} + {vec(self.b)}"


def _channel_vector(c: np.ndarray, rank: int, channel_axis: int, channels: int) -> np.ndarray | None:
    """A constant broadcast against a rank-`rank` tensor: one value (shape (1,)) or one per channel on
    `channel_axis` (shape (C,)); None for anything else (values over space, other axes, NaN)."""
    c = np.asarray(c, np.float64)
    if c.size == 0 or not np.all(np.isfinite(c)):
        return None
    if c.size == 1:
        return c.reshape(1)
    if c.ndim > rank or c.size != channels:
        return None
    shape = (1,) * (rank - c.ndim) + c.shape
    if shape[channel_axis] != channels:
        return None
    return c.reshape(channels)


def _consumer(proto: onnx.ModelProto, name: str):
    """The one node that reads `name`'s values (shape readers aside), or None."""
    users = [n for n in proto.graph.node if name in n.input and n.op_type not in _SHAPE_READERS]
    return users[0] if len(users) == 1 else None


def input_affine(proto: onnx.ModelProto, name: str, layout: str) -> InputAffine | None:
    """The affine map the graph applies to its rank-4 float input `name` before anything else, or None
    when the input goes straight to other ops (a convolution, a resize, ...)."""
    if layout not in ("NCHW", "NHWC"):
        return None
    graph_in = next((i for i in proto.graph.input if i.name == name), None)
    dims = graph_in.type.tensor_type.shape.dim if graph_in is not None else []
    if len(dims) != 4:
        return None
    axis = 1 if layout == "NCHW" else 3
    channels = dims[axis].dim_value
    if channels <= 0:
        return None
    producers = _producers(proto)
    a, b, ops, tensor = np.ones(1), np.zeros(1), [], name
    for _ in range(MAX_STEPS):
        node = _consumer(proto, tensor)
        if node is None or not node.output:
            break
        if node.op_type in _PASS:
            tensor = node.output[0]
            continue
        if node.op_type == "Transpose":
            perm = _attr(node, "perm")
            if perm is None or sorted(perm) != [0, 1, 2, 3]:
                break
            axis, tensor = list(perm).index(axis), node.output[0]
            continue
        if node.op_type not in _AFFINE or len(node.input) != 2 or node.input[0] == node.input[1]:
            break
        first = node.input[0] == tensor
        other = node.input[1] if first else node.input[0]
        raw = _const_value(other, proto, producers)
        c = None if raw is None else _channel_vector(raw, 4, axis, channels)
        if c is None:
            break
        if node.op_type == "Mul":
            a, b = a * c, b * c
        elif node.op_type == "Add":
            b = b + c
        elif node.op_type == "Sub":
            a, b = (a, b - c) if first else (-a, c - b)
        elif first and np.all(c != 0):  # Div by a constant (a constant divided by the input is not affine)
            a, b = a / c, b / c
        else:
            break
        ops.append(f"{node.op_type}({'/'.join(f'{x:.4g}' for x in c)})")
        tensor = node.output[0]
    if not ops or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or np.any(a == 0) \
            or (np.all(a == 1) and np.all(b == 0)):  # none, or only identities (a Mul by 1 after a Cast)
        return None
    return InputAffine(a, b, tuple(ops))


def _normalised(affine: InputAffine, scale: float) -> bool:
    ends = np.stack([affine.b, affine.a * scale + affine.b])
    return bool(np.all(np.abs(ends[1] - ends[0]) >= NORMAL_SPAN) and np.all(np.abs(ends) <= NORMAL_BOUND))


def _preprocessing_like(affine: InputAffine, scale: float) -> bool:
    """The ops look like preprocessing: they scale (a Mul or Div by something other than +-1), or they
    subtract from every channel a value within the middle half of the pixel range (a mean). An Add of a
    small bias or a sign flip alone is no evidence of what range the graph expects."""
    centre = -affine.b / affine.a / scale
    return bool(np.any(np.abs(np.abs(affine.a) - 1) > 1e-3) or np.all((centre >= 0.25) & (centre <= 0.75)))


def pixel_scale(affine: InputAffine) -> float | None:
    """255.0 when the graph normalises 0..255 pixels itself, 1.0 when it normalises 0..1 pixels, None
    when neither range comes out normalised by ops that look like preprocessing (then the ops are not
    read as such)."""
    fits = [s for s in (255.0, 1.0) if _normalised(affine, s) and _preprocessing_like(affine, s)]
    return fits[0] if len(fits) == 1 else None


def channel_order(affine: InputAffine, scale: float) -> str:
    """The channel order: BGR when the pixel value each channel maps to 0 is ImageNet's mean in reverse
    (Caffe-style models: Keras ResNet50, VGG), else RGB."""
    if affine.a.size != 3:
        return "RGB"
    zero = -affine.b / affine.a / scale  # in 0..1 pixels, in the input's channel order
    if np.all(np.abs(zero - IMAGENET_MEAN[::-1]) <= MEAN_TOLERANCE):
        return "BGR"
    return "RGB"


def graph_preprocess(proto: onnx.ModelProto, name: str, layout: str, grey: bool) -> tuple[dict, str] | None:
    """Preprocessing fields for a float picture input whose graph normalises it itself: the pixel
    range it expects, no mean or std of onnxai's own (the graph has them), the channel order its means
    imply; with a line for ``Model.preprocess_source``. None when the graph does not normalise."""
    affine = input_affine(proto, name, layout)
    scale = None if affine is None else pixel_scale(affine)
    if scale is None:
        return None
    order = "L" if grey else channel_order(affine, scale)
    n = 1 if grey else 3
    fields = dict(scale=1.0 if scale == 255.0 else 1.0 / 255.0, mean=(0.0,) * n, std=(1.0,) * n, channels=order)
    pixels = "0..255" if scale == 255.0 else "0..1"
    return fields, (f"read from the graph: it normalises its input itself ({affine.describe()}), so it is "
                    f"given {pixels} pixels{', BGR' if order == 'BGR' else ''}")
