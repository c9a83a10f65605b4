"""Which inner tensors are maps over the picture's grid, and where their channels lie.

A CAM reads a layer as K maps of h x w cells over the picture. That reading is only right when the
tensor really is such a map and its channel axis is known; a head tensor shaped 1x1x1xC or an
attention tensor (B, T, heads, d) is not, and an exporter may keep inner tensors NCHW behind an NHWC
input (tf2onnx). So the layout is read from the graph first, and the shape only checks it:

    evidence      walks the graph from the input: ONNX's spatial ops (Conv, pools, BatchNormalization,
                  ...) make NCHW tensors; a Transpose permutes a known layout; per-element ops,
                  LayerNormalization, MatMul by a constant matrix, Concat, Resize ... keep it; a
                  Reshape of an NCHW map to (B, C, h*w), or of an NHWC one to (B, h*w, C), makes
                  channels-first or token rows; everything else forgets it
    read          a tensor's shape + its evidence -> Reading: "nchw", "nhwc", "tokens" (B, T, C) or
                  None, the grid (h, w), leading non-patch tokens, and why. With evidence the grid
                  must have both sides > 1 and the input's aspect; without, the only layout whose
                  grid is the input's grid divided by a whole stride (two such layouts: ambiguous,
                  not read; tokens: T - p = h * w for p in 0..2 on such a grid)
    list_layers   graph.list_layers with a Reading per tensor, and whether the tensor cuts the
                  graph (every path from the input to the output goes through it; Shape-only reads
                  of the input do not count), which Grad-CAM's tail needs
    sees_patches  whether the output depends on a token stream's patch tokens at all: after the last
                  attention of a ViT only per-token ops (LayerNorm, MLP, residual Adds) lie before the
                  head's Gather of the class token, so the patch tokens there do not reach the output
    residual_add  whether a tensor is a residual stream (an Add of two computed tensors, not of a bias)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import onnx

from . import graph

NCHW_OPS = {
    "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "DeformConv", "FusedConv", "MaxPool", "AveragePool",
    "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "BatchNormalization", "InstanceNormalization", "LRN", "DepthToSpace",
    "SpaceToDepth", "MaxUnpool",
}
NHWC_OPS = {"NhwcConv", "NhwcMaxPool", "NhwcFusedConv"}
KEEP_OPS = {
    "Identity", "Dropout", "Cast", "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "Softplus", "Softsign", "Gelu", "FastGelu", "BiasGelu", "QuickGelu", "Mish", "Erf", "Exp",
    "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Clip", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum",
    "Mean", "Where", "Resize", "Upsample", "Pad", "Concat", "Split", "Slice", "LayerNormalization",
    "SimplifiedLayerNormalization", "SkipLayerNormalization", "Softmax", "QuantizeLinear", "DequantizeLinear",
    "ReduceMean", "ReduceMax", "ReduceSum", "ReduceMin",
}
CHANNEL_AXIS = {"nchw": 1, "nhwc": 3, "tokens": 2}
PREFIXES = (0, 1, 2)  # class token, distillation token


@dataclasses.dataclass(frozen=True)
class Reading:
    """How a tensor reads as maps. layout: "nchw", "nhwc", "tokens" or None (not a map over the
    picture); grid (h, w); prefix: leading non-patch tokens; why: in words; evidence: the layout the
    graph gives it (None: the shape alone decided); cuts: Grad-CAM can cut the graph there."""

    layout: str | None
    grid: tuple = ()
    prefix: int = 0
    why: str = ""
    evidence: str | None = None
    input_hw: tuple = ()
    cuts: bool = False

    @property
    def usable(self) -> bool:
        return self.layout is not None

    @property
    def channel_axis(self) -> int | None:
        return CHANNEL_AXIS.get(self.layout)

    def describe(self) -> str:
        if not self.usable:
            return f"not a map over the picture: {self.why}"
        h, w = self.grid
        what = f"tokens ({self.prefix} in front)" if self.layout == "tokens" else self.layout.upper()
        return f"{what}, {h}x{w} grid: {self.why}"

    def for_shape(self, shape) -> "Reading":
        """The same tensor read at another (actual) shape."""
        return dataclasses.replace(read(shape, self.evidence, self.input_hw, self._evidence_why()), cuts=self.cuts)

    def _evidence_why(self) -> str:
        return self.why.split("; ")[0] if self.evidence else ""


# --------------------------------------------------------------------------- evidence from the graph


def _perm_layout(layout: str | None, perm) -> str | None:
    if layout in ("nchw", "nhwc") and len(perm) == 4:
        out = "".join(layout[p] for p in perm)
        return out if out in ("nchw", "nhwc") else None
    if layout in ("tokens", "nct") and list(perm) == [0, 2, 1]:
        return "nct" if layout == "tokens" else "tokens"
    return None


def evidence(proto: onnx.ModelProto, input_name: str, input_layout: str | None, shapes: dict) -> dict:
    """tensor -> (layout, why) for the tensors whose layout the graph tells: "nchw", "nhwc", "tokens"
    (B, T, C) or "nct" (B, C, T). ``shapes``: tensor -> inferred shape (tuple or None)."""
    known: dict = {}
    if input_layout in ("NCHW", "NHWC"):
        known[input_name] = (input_layout.lower(), f"the model's input is {input_layout}")
    consts = {i.name for i in proto.graph.initializer}
    consts |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    for node in proto.graph.node:
        outs = [o for o in node.output if o]
        ins = [known[i][0] for i in node.input if i in known]
        op = node.op_type
        layout, why = None, ""
        if op in NCHW_OPS:
            layout, why = "nchw", f"made by {op} (ONNX's {op} is NCHW)"
        elif op in NHWC_OPS:
            layout, why = "nhwc", f"made by {op}"
        elif op == "Transpose" and ins:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            layout = _perm_layout(ins[0], perm or [])
            why = f"Transpose {perm} of a {ins[0].upper()} tensor"
        elif op in ("Reshape", "Flatten") and ins and ins[0] in ("nchw", "nhwc"):
            src, dst = shapes.get(node.input[0]), shapes.get(outs[0])
            if _ints(src) and _ints(dst) and len(src) == 4 and len(dst) == 3:
                c = src[1] if ins[0] == "nchw" else src[3]
                hw = src[2] * src[3] if ins[0] == "nchw" else src[1] * src[2]
                if ins[0] == "nchw" and tuple(dst[1:]) == (c, hw):
                    layout, why = "nct", "an NCHW map flattened to (B, C, h*w)"
                elif ins[0] == "nhwc" and tuple(dst[1:]) == (hw, c):
                    layout, why = "tokens", "an NHWC map flattened to tokens (B, h*w, C)"
        elif op in KEEP_OPS or (op == "MatMul" and len(node.input) > 1 and node.input[1] in consts):
            if op == "MatMul" and node.input[0] not in known:
                ins = []
            if ins and all(l == ins[0] for l in ins):
                layout, why = ins[0], f"{op} keeps the layout of its {ins[0].upper()} input"
        if layout is not None:
            for o in outs:
                known[o] = (layout, why)
    return known


def _ints(shape) -> bool:
    return shape is not None and all(isinstance(d, int) and d > 0 for d in shape)


# --------------------------------------------------------------------------- reading a shape


def fits(h: int, w: int, H: int, W: int) -> bool:
    """A grid of h x w cells over an H x W picture: both sides > 1, not larger, the picture's aspect
    (within 25%, or half a cell of rounding)."""
    if h < 2 or w < 2 or h > H or w > W:
        return False
    r = (h * W) / (w * H)
    return max(r, 1 / r) <= 1.25 or abs(h * W - w * H) <= 0.5 * max(H, W)


def whole_stride(h: int, w: int, H: int, W: int) -> bool:
    """h x w is H x W divided by one whole stride s (each side floor(X/s) - 2 .. ceil(X/s): padding),
    in the picture's aspect."""
    if not fits(h, w, H, W):
        return False
    for s in range(1, max(H, W) + 1):
        if H // s - 2 <= h <= -(-H // s) and W // s - 2 <= w <= -(-W // s):
            return True
    return False


def _token_grids(t: int, H: int, W: int, strict: bool, prefixes=PREFIXES) -> list:
    found = []
    for p in prefixes:
        n = t - p
        if n < 4:
            continue
        for h in range(2, n // 2 + 1):
            if n % h:
                continue
            w = n // h
            if fits(h, w, H, W) and (not strict or any(H // s == h and W // s == w for s in range(1, H + 1))):
                found.append((p, h, w))  # strict: patches of one whole size s tile the picture
    if len(found) > 1:  # prefer the grid with the picture's aspect
        best = min(abs(math.log(h / w) - math.log(H / W)) for _, h, w in found)
        found = [f for f in found if abs(math.log(f[1] / f[2]) - math.log(H / W)) <= best + 1e-9]
    return found


def read(shape, evidence_layout: str | None, input_hw, evidence_why: str = "", prefix: int | None = None) -> Reading:
    """Reading of a tensor of ``shape`` (batch first) over a picture of ``input_hw``; see the module doc."""
    H, W = input_hw if input_hw and all(input_hw) else (None, None)
    base = dict(evidence=evidence_layout, input_hw=tuple(input_hw or ()))
    if shape is None or not _ints(shape[1:]):
        return Reading(None, why="its shape is unknown (shape inference could not tell)", **base)
    shape = tuple(int(d) for d in shape[1:])
    if H is None:
        return Reading(None, why="the model's input size is unknown", **base)
    if len(shape) == 3:
        grids = {"nchw": shape[1:], "nhwc": shape[:2]}
        if evidence_layout in grids:
            h, w = grids[evidence_layout]
            if fits(h, w, H, W):
                return Reading(evidence_layout, (h, w), 0, evidence_why, **base)
            return Reading(None, why=f"{evidence_why}; its {h}x{w} grid is not a grid over the {H}x{W} picture "
                                     "(both sides must be > 1, with the picture's aspect)", **base)
        ok = [k for k, (h, w) in grids.items() if whole_stride(h, w, H, W)]
        if len(ok) == 1:
            h, w = grids[ok[0]]
            return Reading(ok[0], (h, w), 0, f"channels on axis {CHANNEL_AXIS[ok[0]]}: only then are the other axes "
                                             f"({h}x{w}) the {H}x{W} input grid divided by a whole stride", **base)
        if ok:
            return Reading(None, why=f"ambiguous: channels on axis 1 ({shape[1]}x{shape[2]}) or 3 ({shape[0]}x"
                                     f"{shape[1]}) both fit the {H}x{W} input, and the graph does not tell; pass "
                                     "channel_axis=1 or 3 (--channel-axis)", **base)
        return Reading(None, why=f"neither {shape[1]}x{shape[2]} (channels on axis 1) nor {shape[0]}x{shape[1]} "
                                 f"(axis 3) is a grid over the {H}x{W} picture", **base)
    if len(shape) == 2:
        if evidence_layout == "nct":
            return Reading(None, why="channels first (B, C, h*w): read the tokens after the Transpose", **base)
        strict = evidence_layout != "tokens"
        found = _token_grids(shape[0], H, W, strict, PREFIXES if prefix is None else (int(prefix),))
        if len(found) == 1:
            p, h, w = found[0]
            why = evidence_why or f"{shape[0]} tokens = {p} in front + a {h}x{w} grid of patches"
            return Reading("tokens", (h, w), p, why, **base)
        if found:
            return Reading(None, why=f"{shape[0]} tokens fit several grids {[f[1:] for f in found]}; pass "
                                     "prefix_tokens (--prefix-tokens)", **base)
        return Reading(None, why=f"{shape[0]} tokens are not a grid over the {H}x{W} picture (after 0 to 2 "
                                 "leading tokens); pass prefix_tokens (--prefix-tokens) if they are", **base)
    return Reading(None, why=f"rank {len(shape) + 1}: a map needs rank 4 (N x K x h x w or N x h x w x K) "
                             "or tokens (N x T x C)", **base)


# --------------------------------------------------------------------------- cuts


def bypassed(proto: onnx.ModelProto, start: str, outputs: list[str]) -> bool:
    """True when some path from a graph input to ``outputs`` avoids ``start`` (Shape/Size reads do not count)."""
    consumers: dict = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    stack = [i for i in graph.input_names(proto) if i != start]
    seen = set(stack)
    targets = set(outputs)
    while stack:
        t = stack.pop()
        if t in targets:
            return True
        for n in consumers.get(t, ()):
            if n.op_type in ("Shape", "Size"):
                continue
            for o in n.output:
                if o and o != start and o not in seen:
                    seen.add(o)
                    stack.append(o)
    return False


def list_layers(proto: onnx.ModelProto, input_name: str, input_shape, input_layout: str | None,
                outputs: list[str] | None = None) -> list[graph.Layer]:
    """graph.list_layers, each layer with its Reading over a picture of the input's size.

    input_shape: the concrete input shape (batch 1) the readings assume; input_layout: "NCHW", "NHWC"
    or None (not a picture: nothing is read as a map); outputs: the tensors Grad-CAM differentiates.
    """
    layers = graph.list_layers(proto)
    if input_layout not in ("NCHW", "NHWC") or input_shape is None:
        return [dataclasses.replace(l, spatial=False, reading=None) for l in layers]
    fixed = _fix_input(proto, input_name, input_shape)
    shapes = {k: (tuple(v[0]) if v[0] is not None else None) for k, v in graph.tensor_infos(graph.infer(fixed)).items()}
    hw = tuple(input_shape[1:3] if input_layout == "NHWC" else input_shape[2:4])
    ev = evidence(proto, input_name, input_layout, shapes)
    outputs = outputs or [o.name for o in proto.graph.output]
    out = []
    for l in layers:
        layout, why = ev.get(l.name, (None, ""))
        r = read(shapes.get(l.name, l.shape), layout, hw, why)
        if r.usable:
            r = dataclasses.replace(r, cuts=not bypassed(proto, l.name, outputs))
        out.append(dataclasses.replace(l, spatial=r.usable, reading=r))
    return out


def _fix_input(proto: onnx.ModelProto, name: str, shape) -> onnx.ModelProto:
    """A copy whose input ``name`` has the concrete ``shape`` (for shape inference)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    for vi in fixed.graph.input:
        if vi.name == name:
            dims = vi.type.tensor_type.shape.dim
            if len(dims) == len(shape):
                for d, v in zip(dims, shape):
                    d.Clear()
                    d.dim_value = int(v)
    fixed.graph.ClearField("value_info")
    return fixed


# --------------------------------------------------------------------------- transformer token streams

# per-element ops: each token row of the output comes from the same row of the input alone
ROW_OPS = KEEP_OPS - {"Concat", "Split", "Slice", "Pad", "Resize", "Upsample", "ReduceMean", "ReduceMax", "ReduceSum",
                      "ReduceMin", "Softmax", "LayerNormalization", "SimplifiedLayerNormalization",
                      "SkipLayerNormalization"}


def _attr(node, name, default=None):
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _row_op(proto, node, tracked_inputs: list) -> str:
    """How ``node`` treats a (B, T, C) tensor it reads: "rows" (each token row from the same row alone),
    "prefix:<n>" (it keeps only the first n tokens: Gather / Slice on the token axis), or "mixed"."""
    op = node.op_type
    axis = _attr(node, "axis", -1)
    if op in ROW_OPS:
        return "rows"
    if op in ("LayerNormalization", "SimplifiedLayerNormalization", "Softmax") and axis in (-1, 2):
        return "rows"
    if op == "MatMul":
        return "rows" if tracked_inputs == [0] else "mixed"
    if op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare"):
        axes = _attr(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = graph.const_value(proto, node.input[1])
        keep = _attr(node, "keepdims", 1)
        return "rows" if keep and axes is not None and [int(a) for a in np.ravel(axes)] in ([-1], [2]) else "mixed"
    if op == "Gather" and tracked_inputs == [0] and _attr(node, "axis", 0) == 1:
        idx = graph.const_value(proto, node.input[1])
        if idx is not None and idx.size and (np.asarray(idx) >= 0).all():
            return f"prefix:{int(np.max(idx)) + 1}"
    if op == "Slice" and tracked_inputs == [0]:
        vals = [graph.const_value(proto, i) if i else None for i in list(node.input[1:5]) + [""] * 3][:4]
        starts, ends, axes, steps = (None if v is None else [int(a) for a in np.ravel(v)] for v in vals)
        if starts is None or ends is None:
            return "mixed"
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps or [1] * len(starts)
        if 1 not in axes and -2 not in axes:
            return "rows" if all(a in (2, -1) for a in axes) else "mixed"
        k = axes.index(1) if 1 in axes else axes.index(-2)
        if starts[k] >= 0 and 0 < ends[k] < 2**31 and steps[k] == 1:
            return f"prefix:{ends[k]}"
    return "mixed"


def sees_patches(proto: onnx.ModelProto, name: str, prefix: int, outputs: list[str]) -> bool:
    """False when the outputs depend on the (B, T, C) tensor ``name`` only through its first ``prefix``
    tokens (per-token ops, then a Gather / Slice of those tokens): its patch tokens never reach them."""
    state = {name: "rows"}  # tensor -> "rows" | "prefix" | "mixed", for tensors that depend on ``name``
    for node in proto.graph.node:
        tracked = [k for k, i in enumerate(node.input) if i in state]
        if not tracked:
            continue
        kinds = {state[node.input[k]] for k in tracked}
        if "mixed" in kinds:
            out = "mixed"
        elif kinds == {"prefix"}:
            out = "prefix"
        elif kinds == {"rows"}:
            out = _row_op(proto, node, tracked)
            if out.startswith("prefix:"):
                out = "prefix" if int(out.split(":")[1]) <= prefix else "mixed"
        else:
            out = "mixed"
        for o in node.output:
            if o:
                state[o] = out
    reached = [state[o] for o in outputs if o in state]
    return not reached or any(s != "prefix" for s in reached)


def residual_add(proto: onnx.ModelProto, name: str) -> bool:
    """True when ``name`` is made by an Add of two computed tensors (a residual stream), not of a constant."""
    consts = {i.name for i in proto.graph.initializer}
    consts |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    for n in proto.graph.node:
        if name in n.output:
            return n.op_type == "Add" and len(n.input) == 2 and not any(i in consts for i in n.input)
    return False
