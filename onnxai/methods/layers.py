"""What the CAM methods (CAM, Grad-CAM, Score-CAM) share: which layer to read, and how to see it as maps.

    resolve_layer(model, layer)   "auto" -> the linear head's pooled features when the graph has such a
                                  head (on a grid larger than 1x1), else the last tensor that is a map
                                  over the picture's grid (grids.py: the channel axis known, both sides
                                  > 1 in the input's aspect, or a token stream), preferring one that
                                  cuts the graph; none -> LayerError. LayerChoice.how says which and
                                  why. Any tensor name from ``onnxai inspect --layers``; unknown names
                                  -> LayerError with close names
    LayerView                     an activation of the layer as (B, K, h, w) maps and back: rank-4
                                  NCHW or NHWC tensors, and transformer tokens (B, T, C) reshaped to
                                  (B, C, h, w) after dropping ``prefix_tokens``; the layout is the
                                  layer's grids.Reading unless ``channel_axis`` / ``prefix_tokens``
                                  are given, and a layer the reading refuses is an error naming them
    elementwise_segment           whether the graph from one tensor to another is a per-element
                                  function (Relu, Clip, BatchNormalization, x * sigmoid(x), ...), which
                                  Grad-CAM differentiates with two runs instead of 2K
    LayerMethod                   a Method whose first forward pass also exposes the layer, so a CAM
                                  costs one forward pass, not two
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import weakref
from dataclasses import dataclass, field

import numpy as np
import onnx

from .. import graph, grids, heads
from ..kernels.resize import resize_map as upsample  # the one map resizer
from ..errors import InputError, LayerError
from .base import Method, check_count

# --------------------------------------------------------------------------- layer choice

_layers_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class LayerChoice:
    """name: the tensor; how: in words, why it was chosen; head: the linear head (None when absent)."""

    name: str
    how: str
    head: heads.LinearHead | None = field(default=None, compare=False, repr=False)
    head_error: str | None = None


class _Facts(dict):
    """A model's facts: "head" and "head_error" at once; "layers" and "by_name" (every tensor with its
    inferred shape and reading: shape inference over the whole graph) only when first asked for, since a
    CAM at the head's features never needs them."""

    def __init__(self, model, head, why):
        super().__init__(head=head, head_error=why)
        self._model = weakref.ref(model)

    def __missing__(self, key):
        if key not in ("layers", "by_name"):
            raise KeyError(key)
        layers = self._model().layers()
        self.update(layers=layers, by_name={l.name: l for l in layers})
        return self[key]


def model_facts(model) -> dict:
    """Per model, computed once: its linear head or why it has none, and (lazily) its layers."""
    facts = _layers_cache.get(model)
    if facts is None:
        try:
            head, why = heads.find_linear_head(model.proto, model.output), None
        except LayerError as e:
            head, why = None, str(e)
        if head is not None and getattr(model, "binary", None) is not None and head.weight.shape[0] == 1:
            w, b = head.weight, head.bias  # one logit z = w.f + b, read as two classes (-z/2, z/2)
            head = dataclasses.replace(head, weight=np.concatenate([-w / 2, w / 2]), bias=np.r_[-b / 2, b / 2])
        facts = _Facts(model, head, why)
        _layers_cache[model] = facts
    return facts


def resolve_layer(model, layer="auto", gradients: bool = True) -> LayerChoice:
    """The tensor a CAM reads. See the module docstring for the rule of ``layer="auto"``; ``gradients``:
    whether the method differentiates the layer (Grad-CAM) or only reads its activations (Score-CAM),
    which matters for a transformer's token streams (``_token_stream``). Decided once per model."""
    memo = model_facts(model).setdefault("choices", {})
    key = (layer if isinstance(layer, str) or layer is None else id(layer), bool(gradients))
    if key not in memo:
        memo[key] = _resolve_layer(model, layer, gradients)
    return memo[key]


def _resolve_layer(model, layer, gradients) -> LayerChoice:
    facts = model_facts(model)
    head = facts["head"]
    if layer is None or layer == "auto":
        grid = _head_grid(facts, head)
        if head is not None and grid != (1, 1):
            grid = f", channels on axis {head.channel_axis}, {grid[0]}x{grid[1]} grid" if grid else ""
            return LayerChoice(head.features, f"auto: the features the linear head pools{grid}", head, None)
        usable = [l for l in facts["layers"] if l.spatial]
        if not usable:
            rank = [l for l in facts["layers"] if l.shape is not None and len(l.shape) in (3, 4) and l.reading]
            seen = "; ".join(f"{l.name} {l.shape_text()}: {l.reading.why}" for l in rank[-3:])
            raise LayerError(
                "layer='auto' found no tensor that is a map over the picture's grid (N x K x h x w or "
                "N x h x w x K with h, w > 1 in the input's aspect, or tokens N x T x C)"
                f"{' and no linear head on a global pooling' if head is None else ''}"
                f"{'; the last candidates: ' + seen if seen else ''}. Name a layer with --layer / layer= "
                "(and --channel-axis / --prefix-tokens), see `onnxai inspect MODEL --layers`"
            )
        cutting = [l for l in usable if l.reading.cuts]
        last = (cutting or usable)[-1]
        stream = _token_stream(model, cutting or usable, usable, gradients) if last.reading.layout == "tokens" else None
        if stream is not None:
            last, why = stream
            return LayerChoice(last.name, f"auto: {why}, {last.reading.describe()}", None, facts["head_error"])
        return LayerChoice(last.name, f"auto: the last map over the picture's grid before the output, "
                                      f"{last.reading.describe()}"
                                      f"{'' if cutting else ' (a skip connection bypasses every such map)'}"
                                      f"{' (the model has no linear head on a global pooling)' if head is None else ''}",
                           None, facts["head_error"])
    if not isinstance(layer, str):
        raise LayerError(f"layer must be 'auto' or a tensor name, not {type(layer).__name__}")
    known = set(facts["by_name"]) | set(graph.input_names(model.proto))
    if layer not in known:
        raise graph.missing_layer_error(layer, model.proto)
    return LayerChoice(layer, "given", head, facts["head_error"])


def _token_stream(model, candidates, usable, gradients: bool = True) -> tuple | None:
    """A transformer's layer. Without gradients (Score-CAM): the last residual stream (an Add of two
    computed tensors), after the last block and before the final norm. With gradients: the LayerNorm that opens the last block whose patch tokens reach the output,
    reading the residual stream entering it (an Add of two computed tensors); pytorch-grad-cam's ViT
    layer, blocks[-1].norm1. After a class-token ViT's last attention only per-token ops lead to the head,
    so there (and on the stream after the last block) the patch tokens do not reach the output and
    Grad-CAM's gradients are zero; on the raw residual stream the map is dominated by the stream's
    offsets (ReLU'd to zero). None: no token stream qualifies (the caller's rule applies)."""
    outputs = [model.output]
    tokens = [l for l in candidates if l.reading.layout == "tokens"]
    if not gradients:
        residual = [l for l in tokens if grids.residual_add(model.proto, l.name)]
        return (residual[-1], "the residual stream after the last transformer block (before the final norm)"
                ) if residual else None
    seeing = [l for l in tokens if grids.sees_patches(model.proto, l.name, l.reading.prefix, outputs)]
    residual = [l for l in seeing if grids.residual_add(model.proto, l.name)]
    if not residual:
        return (seeing[-1], "the last token stream whose patch tokens reach the output") if seeing else None
    stream = residual[-1]
    by_name = {l.name: l for l in usable if l.reading.layout == "tokens"}
    norm = next((n.output[0] for n in model.proto.graph.node if n.op_type == "LayerNormalization"
                 and n.input[0] == stream.name and n.output[0] in by_name), None)
    last = "" if stream is tokens[-1] else " (after it the head reads only the class token)"
    if norm is None:
        return stream, f"the residual stream entering the last attention whose patch tokens reach the output{last}"
    return by_name[norm], (f"the LayerNorm opening the last block whose patch tokens reach the output{last}, "
                           f"on the residual stream {stream.name!r}")


def _head_grid(facts, head) -> tuple | None:
    """The (h, w) grid the linear head pools, in its own channel layout (None: unknown)."""
    shape = None if head is None else head.features_shape
    if shape is None or len(shape) != 4:
        return None
    grid = shape[2:] if head.channel_axis == 1 else shape[1:3]
    return tuple(grid) if all(isinstance(g, int) for g in grid) else None


# --------------------------------------------------------------------------- maps view


@dataclass
class LayerView:
    """How an activation of the layer maps to (B, K, h, w).

    kind: "nchw", "nhwc" or "tokens"; prefix: tokens dropped in front (class / distillation tokens);
    grid: (h, w) of the maps.
    """

    kind: str
    prefix: int = 0
    grid: tuple = ()

    @classmethod
    def of(cls, act: np.ndarray, name: str, channel_axis: int | None = None, prefix_tokens: int | None = None,
           reading=None):
        """The view of ``act``: ``channel_axis`` / ``prefix_tokens`` when given, else the layer's
        grids.Reading (which refuses layers that are not maps over the picture, or ambiguous ones);
        without a reading (an array alone): NCHW, and the token prefix guessed from the count."""
        if reading is not None and channel_axis is None and (prefix_tokens is None or act.ndim != 3):
            if not reading.usable:
                names = "prefix_tokens (--prefix-tokens)" if act.ndim == 3 else "channel_axis=1 or 3 (--channel-axis)"
                raise LayerError(f"layer {name!r} ({'x'.join(map(str, act.shape))}) is not read as maps: "
                                 f"{reading.why}. If it is a map, pass {names}; see `onnxai inspect MODEL --layers`")
            if act.ndim == 4 or reading.layout == "tokens" and act.ndim == 3:
                return cls(reading.layout, reading.prefix, tuple(reading.grid))
        if act.ndim == 4:
            axis = 1 if channel_axis is None else int(channel_axis) % 4
            if axis not in (1, 3):
                raise LayerError(f"channel_axis of a rank-4 layer is 1 (NCHW) or 3 (NHWC), not {channel_axis}")
            kind = "nchw" if axis == 1 else "nhwc"
            grid = act.shape[2:] if kind == "nchw" else act.shape[1:3]
            if reading is not None and tuple(grid) == (1, 1):
                raise LayerError(f"layer {name!r} read with channels on axis {axis} is a 1x1 grid: no map")
            return cls(kind, 0, tuple(int(g) for g in grid))
        if act.ndim == 3:
            t = int(act.shape[1])
            if prefix_tokens is None:
                if _is_square(t - 1) and t > 1:
                    prefix_tokens = 1
                elif _is_square(t):
                    prefix_tokens = 0
                else:
                    raise LayerError(
                        f"layer {name!r} has {t} tokens: neither T nor T - 1 is a square, so its token grid "
                        "is unknown; pass prefix_tokens= (--prefix-tokens) with the number of leading "
                        "non-patch tokens"
                    )
            prefix_tokens = int(prefix_tokens)
            if not 0 <= prefix_tokens < t or not _is_square(t - prefix_tokens):
                raise LayerError(f"layer {name!r}: {t} tokens minus prefix_tokens={prefix_tokens} is not a square grid")
            side = math.isqrt(t - prefix_tokens)
            return cls("tokens", prefix_tokens, (side, side))
        raise LayerError(
            f"layer {name!r} has shape {act.shape}: a CAM needs a spatial activation (rank 4, N x K x h x w "
            "or N x h x w x K) or transformer tokens (rank 3, N x T x C); pick one marked * by "
            "`onnxai inspect MODEL --layers --spatial`"
        )

    def maps(self, act: np.ndarray) -> np.ndarray:
        """Layer activation -> (B, K, h, w), float32 or float64 as given (a view where possible)."""
        act = np.asarray(act)
        if act.dtype not in (np.float32, np.float64):
            act = act.astype(np.float32)
        if self.kind == "nchw":
            return act
        if self.kind == "nhwc":
            return act.transpose(0, 3, 1, 2)
        b, t, c = act.shape
        h, w = self.grid
        return act[:, self.prefix:, :].reshape(b, h, w, c).transpose(0, 3, 1, 2)

    def to_layer(self, maps: np.ndarray, like: np.ndarray) -> np.ndarray:
        """(B, K, h, w) maps -> a layer tensor; tokens take their prefix tokens from ``like`` (1, T, C)."""
        if self.kind == "nchw":
            return np.ascontiguousarray(maps)
        if self.kind == "nhwc":
            return np.ascontiguousarray(maps.transpose(0, 2, 3, 1))
        b, k, h, w = maps.shape
        out = np.empty((b,) + like.shape[1:], np.float32)
        out[:, :self.prefix] = like[:, :self.prefix]
        out[:, self.prefix:] = maps.transpose(0, 2, 3, 1).reshape(b, h * w, k)
        return out


def _is_square(n: int) -> bool:
    return n >= 1 and math.isqrt(n) ** 2 == n


# --------------------------------------------------------------------------- elementwise segments

_UNARY = {
    "Identity", "Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Celu",
    "Softplus", "Softsign", "Gelu", "Mish", "Erf", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal",
    "ThresholdedRelu", "Sin", "Cos", "Floor", "Ceil", "Round", "Sign",
}
_BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Clip", "Dropout", "Cast"}


def elementwise_segment(proto: onnx.ModelProto, start: str, end: str, shape: tuple) -> bool:
    """True when ``end`` is a per-element function of ``start`` (same shape, no mixing of elements).

    Every node between them must be an elementwise op whose other operands are constants that
    broadcast into ``shape`` (the activation's shape) without enlarging it.
    """
    if start == end:
        return True
    try:
        sub = graph.extract_tail(proto, start, [end])
    except LayerError:
        return False
    consts = {i.name: tuple(i.dims) for i in sub.graph.initializer}
    for n in sub.graph.node:
        if n.op_type == "Constant":
            t = next((a.t for a in n.attribute if a.name == "value"), None)
            if t is None:
                return False
            consts[n.output[0]] = tuple(t.dims)
    rank = len(shape)
    for n in sub.graph.node:
        if n.op_type == "Constant":
            continue
        if n.domain not in ("", "ai.onnx") and not (n.domain == "com.microsoft" and n.op_type in ("Gelu", "FastGelu")):
            return False
        if n.op_type == "BatchNormalization":
            if len(n.output) > 1 and any(n.output[1:]) or not all(i in consts for i in n.input[1:]):
                return False
            if any(len(consts[i]) != 1 for i in n.input[1:]) or rank != 4:
                return False
            continue
        if n.op_type == "Cast":
            to = next((a.i for a in n.attribute if a.name == "to"), None)
            if to not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
                return False
            continue
        if n.op_type not in _UNARY and n.op_type not in _BINARY:
            return False
        if n.op_type in _UNARY and len([i for i in n.input if i]) > 1:
            return False
        if n.op_type == "Dropout" and len(n.output) > 1 and n.output[1]:
            return False
        for i in n.input:
            if not i or i not in consts:
                continue
            cshape = consts[i]
            if len(cshape) > rank:
                return False
            for c, a in zip(reversed(cshape), reversed(shape)):
                if c != 1 and c != a:
                    return False
    return True


# --------------------------------------------------------------------------- the method shape


def check_reading(channel_axis, prefix_tokens) -> tuple[int | None, int | None]:
    """The user's reading of a layer: channel_axis None, 1 or 3 (-3 and -1 name the same axes of a rank-4
    layer); prefix_tokens None or an integer >= 0."""
    if channel_axis is not None and (isinstance(channel_axis, (bool, np.bool_)) or
                                     not isinstance(channel_axis, numbers.Integral) or channel_axis not in (1, 3, -3, -1)):
        raise InputError(f"channel_axis is 1 (NCHW) or 3 (NHWC); got {channel_axis!r}")
    if prefix_tokens is not None:
        prefix_tokens = check_count(prefix_tokens, "prefix_tokens", 0)
    return (None if channel_axis is None else int(channel_axis)), prefix_tokens


class LayerMethod(Method):
    """A method that reads one layer A (K channels) and weighs its channels: map = f(sum_k w_k A_k).

    A subclass supplies only ``channel_weights`` (and, if its map is not Grad-CAM's
    ReLU-then-upsample, ``layer_map``); the first forward pass exposes the layer (one pass gives both
    the probabilities and the activations), and the result assembly is shared. Subclasses set
    ``self.layer`` (and optionally ``self.channel_axis``, ``self.prefix_tokens``, ``self.align_corners``).
    """

    layer = "auto"
    channel_axis = None
    prefix_tokens = None
    align_corners = False

    gradients = True  # does the method differentiate the layer (resolve_layer's choice for transformers)?

    def choose_layer(self, model) -> LayerChoice:
        return resolve_layer(model, self.layer, self.gradients)

    def channel_weights(self, model, x, crop, probs, targets, layer: "LayerRead") -> tuple[np.ndarray, list[dict]]:
        """-> (weights (len(targets), K) float64, one dict of extras per target; a "timings" entry
        there goes to ``Explanation.timings``)."""
        raise NotImplementedError

    def layer_map(self, low: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """sum_k w_k A_k at the layer's resolution -> (map (h, w), raw_map): Grad-CAM's ReLU, then upsampling."""
        low = np.maximum(low, 0.0)
        return upsample(low, h, w, self.align_corners), low

    def raw_upsample(self) -> str | None:
        """layer_map's own rule: the map is the (clipped) grid, which is raw_map, upsampled."""
        return "bilinear-align-corners" if self.align_corners else "bilinear"

    def first_layers(self, model) -> dict[str, str]:
        """The first forward pass exposes the chosen layer: one pass gives probabilities and activations."""
        return {"acts": self.choose_layer(model).name}

    def read_layer(self, model, x, acts=None) -> "LayerRead":
        """The chosen layer's activation (1, ...) in its own layout, how to view it, and its maps (1, K, h, w)."""
        choice = self.choose_layer(model)
        if acts is None:
            acts = model.activations(x, [choice.name])[0][choice.name]
        axis, reading = self.channel_axis, None
        at_head = acts.ndim == 4 and choice.head is not None and choice.name == choice.head.features
        layer = None if at_head else model_facts(model)["by_name"].get(choice.name)
        if axis is None and at_head:
            axis = choice.head.channel_axis  # the head pools it: its own convention
        elif layer is not None and layer.reading is not None:
            reading = layer.reading.for_shape(acts.shape)  # the graph's layout, checked on the real shape
        elif axis is None and acts.ndim == 4 and model.input.layout == "NHWC" and choice.name == model.input.name:
            axis = 3
        view = LayerView.of(acts, choice.name, axis, self.prefix_tokens, reading)
        return LayerRead(choice, acts, view, view.maps(acts))

    def _explain(self, model, x, crop, probs, targets, acts=None):
        layer = self.read_layer(model, x, acts)
        weights, extras = self.channel_weights(model, x, crop, probs, targets, layer)
        A = layer.maps[0].astype(np.float64)  # (K, h, w)
        H, W = crop.shape[:2]
        out = []
        for i, t in enumerate(targets):
            map_, raw = self.layer_map(as_stored(np.tensordot(weights[i], A, axes=1)), H, W)
            e = self._explanation(model, t, probs, map_, raw_map=np.asarray(raw, np.float32),
                                  importance=np.asarray(weights[i], np.float32))
            how = layer.choice.how
            if how == "given":
                how = f"given, read as {layer.view.kind.upper()} on a {A.shape[1]}x{A.shape[2]} grid"
            e.extras.update(layer=layer.choice.name, layer_choice=how,
                            layer_shape=list(layer.acts.shape), layer_layout=layer.view.kind,
                            layer_grid=[int(g) for g in A.shape[1:]])
            if layer.view.kind == "tokens":
                e.extras["prefix_tokens"] = layer.view.prefix
            extra = dict(extras[i])
            e.timings.update(extra.pop("timings", {}))
            e.extras.update(extra)
            out.append(e)
        return out


def as_stored(low: np.ndarray) -> np.ndarray:
    """A layer-resolution map rounded to float32 (raw_map's type) and back to float64 for upsampling:
    the stored raw_map then rebuilds the map bit for bit (the data-set store keeps a CAM's map at its
    layer's grid, onnxai.dataset.map_array upsamples it)."""
    return np.asarray(low).astype(np.float32).astype(np.float64)


@dataclass
class LayerRead:
    """One read of the layer: the choice, its activation (1, ...) as the graph lays it out, the view
    that maps it to channels, and the maps (1, K, h, w)."""

    choice: LayerChoice
    acts: np.ndarray
    view: LayerView
    maps: np.ndarray
