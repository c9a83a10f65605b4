"""Pure ONNX graph surgery: no runtime, ModelProto in, ModelProto or facts out.

- ``read_model``: load a file with errors that say what is wrong with it.
- ``infer`` / ``tensor_infos`` (graph_shapes.py): inferred shapes, without copying the weights.
- ``list_layers``: every tensor a node produces, with its inferred shape (grids.py reads which of
  them are maps over the picture, for CAMs).
- ``expose``: add intermediate tensors as extra graph outputs (works when shape inference fails).
- ``extract_tail``: the sub-model from one named tensor to the outputs.

A classifier's two ends (a dynamic batch axis, skl2onnx's ZipMap, class labels) are graph_ends.py's;
its head (the linear layer on a global pooling a CAM reads) is heads.py's.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .errors import LayerError, ModelError
from .graph_shapes import infer, tensor_infos  # noqa: F401 - graph.infer / graph.tensor_infos for callers

# Ops that pass a tensor through unchanged in value (for walking the head of a network).
_PASS_THROUGH = {"Identity", "Dropout", "Cast"}


def read_model(path) -> onnx.ModelProto:
    """Load an ONNX file, raising ModelError with a useful message for every way it can be bad."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelError(f"{path} is a folder; give the path of a .onnx file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path} is empty (0 bytes); re-export or re-download the model")
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # protobuf DecodeError, external data errors, ...
        raise ModelError(
            f"{path} is not a readable ONNX model ({type(e).__name__}: {str(e)[:200]}); the file may be "
            "truncated or of another format: re-export it, e.g. with `onnxai export`"
        ) from None
    if len(proto.graph.node) == 0 or len(proto.graph.output) == 0:
        raise ModelError(
            f"{path} parsed as protobuf but holds no ONNX graph (no nodes or no outputs); "
            "it is probably not an ONNX file or it is truncated"
        )
    return proto


@dataclass(frozen=True)
class Layer:
    """A tensor produced by a node: a candidate for exposing or explaining."""

    name: str
    op_type: str
    node: str
    shape: tuple | None  # None where shape inference could not tell
    spatial: bool  # here: rank-4 and not 1x1 (a guess); grids.list_layers: a map over the picture's grid
    reading: object = field(default=None, compare=False)  # grids.Reading, from grids.list_layers

    def shape_text(self) -> str:
        if self.shape is None:
            return "?"
        return "x".join(str(d) if isinstance(d, int) else "?" for d in self.shape)


def list_layers(proto: onnx.ModelProto) -> list[Layer]:
    """Every node output in graph order, with inferred shapes."""
    inferred = infer(proto)
    infos = tensor_infos(inferred)
    layers = []
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            continue
        for name in node.output:
            if not name:
                continue
            shape = infos.get(name, (None, 0))[0]
            layers.append(
                Layer(
                    name=name,
                    op_type=node.op_type,
                    node=node.name,
                    shape=tuple(shape) if shape is not None else None,
                    spatial=shape is not None and len(shape) == 4 and not (shape[2] == 1 and shape[3] == 1),
                )
            )
    return layers


def _all_tensor_names(proto: onnx.ModelProto) -> set[str]:
    names = {i.name for i in proto.graph.input}
    for n in proto.graph.node:
        names.update(o for o in n.output if o)
    return names


def missing_layer_error(name: str, proto: onnx.ModelProto) -> LayerError:
    names = sorted(_all_tensor_names(proto))
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    hint = f"; close names: {', '.join(close)}" if close else ""
    return LayerError(
        f"no tensor named {name!r} in the model{hint}. List the layers with `onnxai inspect MODEL --layers`"
    )


def expose(proto: onnx.ModelProto, names) -> onnx.ModelProto:
    """A copy of the model with the named tensors added as graph outputs (after the existing ones)."""
    out = copy.deepcopy(proto)
    out.graph.output.extend(_new_outputs(proto, names))
    return out


def exposed_bytes(proto: onnx.ModelProto, model_bytes: bytes, names) -> bytes:
    """``expose(proto, names)`` serialized, from the model's own serialization ``model_bytes`` without
    copying or serializing the weights again (~20 ms on a 19 MB model): protobuf's wire format merges
    a message field that appears twice, so a trailing ModelProto holding only the new graph outputs
    appends them to the graph's outputs when the bytes are parsed (tests check the parse equals
    ``expose``)."""
    tail = onnx.ModelProto()
    tail.graph.output.extend(_new_outputs(proto, names))
    return model_bytes + tail.SerializeToString() if len(tail.graph.output) else model_bytes


def _new_outputs(proto: onnx.ModelProto, names) -> list:
    """ValueInfos for the named tensors that are not outputs yet (type and shape from inference, the
    batch left open); a name the graph does not have is a LayerError."""
    names = [names] if isinstance(names, str) else list(names)
    known = _all_tensor_names(proto)
    for name in names:
        if name not in known:
            raise missing_layer_error(name, proto)
    infos = tensor_infos(infer(proto))
    present, out = {o.name for o in proto.graph.output}, []
    for name in names:
        if name in present:
            continue
        shape, elem = infos.get(name, (None, 0))
        if not elem:
            elem = onnx.TensorProto.FLOAT
        if shape:
            shape = list(shape)
            shape[0] = None  # the batch follows the input; leave it open
        out.append(helper.make_tensor_value_info(name, elem, shape))
        present.add(name)
    return out


def input_names(proto: onnx.ModelProto) -> list[str]:
    """Graph inputs that are real inputs (not initializers listed as inputs, as old exporters do)."""
    inits = {i.name for i in proto.graph.initializer}
    return [i.name for i in proto.graph.input if i.name not in inits]


# --------------------------------------------------------------------------- constants and attributes


def _producers(proto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in proto.graph.node for o in n.output if o}


def _const_value(name: str, proto, producers) -> np.ndarray | None:
    for init in proto.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    node = producers.get(name)
    if node is not None and node.op_type == "Constant":
        for a in node.attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
    if node is not None and node.op_type in ("Transpose",) and node.input:
        inner = _const_value(node.input[0], proto, producers)
        if inner is not None:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            return np.transpose(inner, perm) if perm else inner.T
    if node is not None and node.op_type in _PASS_THROUGH and node.input:
        return _const_value(node.input[0], proto, producers)
    if node is not None and node.op_type == "DequantizeLinear" and len(node.input) >= 2:  # QDQ weights
        return _dequantized(node, proto, producers)
    return None


def _dequantized(node, proto, producers) -> np.ndarray | None:
    """(q - zero_point) * scale of a DequantizeLinear whose inputs are constants (per tensor, or per
    axis with a 1-D scale), as float32; None when any is computed."""
    q, scale = (_const_value(node.input[i], proto, producers) for i in (0, 1))
    zp = _const_value(node.input[2], proto, producers) if len(node.input) > 2 and node.input[2] else 0
    if q is None or scale is None or zp is None:
        return None
    scale, zp = np.asarray(scale, np.float32), np.asarray(zp, np.float32)
    try:
        if scale.ndim == 1 and scale.size > 1 and q.ndim > 0:  # per axis: broadcast along that axis
            shape = [1] * q.ndim
            shape[int(_attr(node, "axis", 1)) % q.ndim] = scale.size
            scale, zp = scale.reshape(shape), (zp.reshape(shape) if zp.size > 1 else zp)
        return ((q.astype(np.float32) - zp) * scale).astype(np.float32)
    except (ValueError, TypeError):  # sizes that do not broadcast: a malformed graph, nothing to read
        return None


def const_value(proto, name: str) -> np.ndarray | None:
    """The value of an initializer or Constant (through Transpose / Identity / Cast, and a
    DequantizeLinear of constants: a QDQ-quantized weight), else None."""
    return _const_value(name, proto, _producers(proto))


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


# --------------------------------------------------------------------------- tail sub-model


def extract_tail(proto: onnx.ModelProto, start: str, outputs: list[str] | None = None,
                 input_shapes: dict | None = None, hold: bool = False) -> onnx.ModelProto:
    """The sub-model that computes ``outputs`` (default: the graph outputs) from tensor ``start``.

    A Shape or Size node that reads a tensor the tail cannot compute from ``start`` (``Shape(input)``
    for a Reshape's batch size, a position embedding's length: ViT and tf2onnx exports) is folded: for
    a fixed input size such a shape is constants plus the batch size, which the tail takes from
    ``Shape(start)[0]``. ``input_shapes`` ({input name: concrete shape}) fixes inputs whose size the
    graph leaves open (the batch axis stays open). Raises LayerError when the outputs also depend on
    the values of other tensors (a skip connection around ``start``), or on a shape that cannot be
    fixed: then ``start`` does not cut the graph in two.
    """
    producers = _producers(proto)
    if start not in producers and start not in input_names(proto):
        raise missing_layer_error(start, proto)
    outputs = outputs or [o.name for o in proto.graph.output]
    inits = {i.name for i in proto.graph.initializer}
    graph_inputs = set(input_names(proto))
    bypass = _computed_without(proto, start, graph_inputs)
    independent = set()  # with hold: tensors whose values read a graph input and not ``start``
    if hold:
        independent = _computed_without(proto, start, graph_inputs, values=True) - _computed_without(proto, "", {start})
    needed_nodes, folds, held = [], [], []
    visited = set()
    stack = list(outputs)
    leaks = set()
    while stack:
        t = stack.pop()
        if t in visited or t == start or t in inits or not t:
            continue
        visited.add(t)
        if t in independent:
            held.append(t)
            continue
        node = producers.get(t)
        if node is None:
            if t in graph_inputs:
                leaks.add(t)
            continue
        if id(node) in {id(n) for n in needed_nodes}:
            continue
        needed_nodes.append(node)
        if node.op_type in _SHAPE_READS and node.input[0] in bypass:
            folds.append(node)  # only the shape of a tensor on the other side of the cut: folded below
            continue
        stack.extend(node.input)
        for a in node.attribute:  # tensors captured by subgraphs (If/Loop)
            if a.type == onnx.AttributeProto.GRAPH:
                for sn in a.g.node:
                    stack.extend(i for i in sn.input)
    if leaks:
        raise LayerError(
            f"the output does not depend on {start!r} alone: it also reads {sorted(leaks)} "
            "(a skip connection or a second input bypasses that layer); pick a layer at a block "
            "boundary, e.g. the one `layer='auto'` chooses"
        )
    order = {id(n): i for i, n in enumerate(proto.graph.node)}
    needed_nodes.sort(key=lambda n: order[id(n)])
    infos = tensor_infos(infer(proto))
    new_nodes, new_inits = [copy.deepcopy(n) for n in needed_nodes], []
    if folds:
        new_nodes, new_inits = _fold_shapes(proto, start, needed_nodes, folds, input_shapes or {})
    used = {i for n in new_nodes for i in n.input}
    for n in new_nodes:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                used.update(i for sn in a.g.node for i in sn.input)
    shape, elem = infos.get(start, (None, onnx.TensorProto.FLOAT))
    if shape:
        shape = list(shape)
        shape[0] = "batch"
    start_vi = helper.make_tensor_value_info(start, elem or onnx.TensorProto.FLOAT, shape)
    out_vis = []
    existing = {o.name: o for o in proto.graph.output}
    for o in outputs:
        if o in existing:
            out_vis.append(copy.deepcopy(existing[o]))
        else:
            oshape, oelem = infos.get(o, (None, onnx.TensorProto.FLOAT))
            if oshape:
                oshape = list(oshape)
                oshape[0] = "batch"
            out_vis.append(helper.make_tensor_value_info(o, oelem or onnx.TensorProto.FLOAT, oshape))
    held_vis = []
    for h in sorted(held, key=lambda h: order.get(id(producers.get(h)), -1)):
        hshape, helem = infos.get(h, (None, onnx.TensorProto.FLOAT))
        hshape = ["batch"] + list(hshape[1:]) if hshape else None
        held_vis.append(helper.make_tensor_value_info(h, helem or onnx.TensorProto.FLOAT, hshape))
    graph = helper.make_graph(
        new_nodes,
        f"{proto.graph.name}_tail_from_{start}",
        [start_vi] + held_vis,
        out_vis,
        initializer=[copy.deepcopy(i) for i in proto.graph.initializer if i.name in used] + new_inits,
    )
    tail = helper.make_model(graph, opset_imports=list(proto.opset_import), producer_name="onnxai")
    tail.ir_version = proto.ir_version
    return tail


# --------------------------------------------------------------------------- folding shape reads

_SHAPE_READS = {"Shape", "Size"}
_BATCH = "__onnxai_batch__"


def _computed_without(proto, start: str, graph_inputs: set, values: bool = False) -> set:
    """Tensors that depend on a graph input other than through ``start`` (the other side of the cut);
    values=True: on its values (what a Shape or Size node makes depends on shapes only)."""
    out = set(graph_inputs) - {start}
    for n in proto.graph.node:
        if values and n.op_type in _SHAPE_READS:
            continue
        ins = list(n.input)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                ins += [i for sn in a.g.node for i in sn.input]
        if any(i in out for i in ins):
            out.update(o for o in n.output if o and o != start)
    return out


def _fold_shapes(proto, start: str, nodes: list, folds: list, input_shapes: dict):
    """The tail's nodes with each Shape/Size node in ``folds`` replaced by constants and multiples of the
    batch size (``Shape(start)[0:1]``). Shape inference runs at the fixed input size with two batch sizes:
    a dimension that does not change is a constant, one that scales with the batch is k * batch."""
    a, b = _shapes_at_batch(proto, input_shapes, _BATCHES[0]), _shapes_at_batch(proto, input_shapes, _BATCHES[1])

    def dims_of(name):
        da, db = a.get(name, (None, 0))[0], b.get(name, (None, 0))[0]
        if da is None or db is None or len(da) != len(db):
            return None
        out = []
        for x, y in zip(da, db):
            if not isinstance(x, int) or not isinstance(y, int):
                return None
            if x == y:
                out.append(x)
            elif x % _BATCHES[0] == 0 and x // _BATCHES[0] * _BATCHES[1] == y:
                out.append((_BATCH, x // _BATCHES[0]))
            else:
                return None
        return out

    folded = {id(n) for n in folds}
    const = helper.make_tensor
    new_inits = [const("__onnxai_zero", onnx.TensorProto.INT64, [1], [0]),
                 const("__onnxai_one", onnx.TensorProto.INT64, [1], [1])]
    out = [helper.make_node("Shape", [start], ["__onnxai_start_shape"]),
           helper.make_node("Slice", ["__onnxai_start_shape", "__onnxai_zero", "__onnxai_one"], [_BATCH])]
    for n in nodes:
        if id(n) not in folded:
            out.append(copy.deepcopy(n))
            continue
        src, target = n.input[0], n.output[0]
        dims = dims_of(src)
        if dims is None:
            raise LayerError(
                f"the output does not depend on {start!r} alone: it also reads the shape of {src!r}, which shape "
                "inference cannot fix from the input's size; pick a layer at a block boundary, e.g. the one "
                "`layer='auto'` chooses")
        if n.op_type == "Shape":
            dims = dims[slice(_attr(n, "start", 0), _attr(n, "end", None))]
        names, run = [], []

        def flush():
            if run:
                names.append(f"__onnxai_fold_{target}_{len(names)}")
                new_inits.append(const(names[-1], onnx.TensorProto.INT64, [len(run)], list(run)))
                run.clear()

        for d in dims:
            if isinstance(d, int):
                run.append(d)
                continue
            flush()
            names.append(_BATCH)
            if d[1] != 1:
                names[-1] = f"__onnxai_fold_{target}_{len(names)}"
                new_inits.append(const(names[-1] + "_k", onnx.TensorProto.INT64, [1], [d[1]]))
                out.append(helper.make_node("Mul", [_BATCH, names[-1] + "_k"], [names[-1]]))
        flush()
        if n.op_type == "Size":
            cat = target + "__onnxai_dims"
            out.append(helper.make_node("Concat", names, [cat], axis=0) if len(names) > 1
                       else helper.make_node("Identity", names, [cat]))
            out.append(helper.make_node("ReduceProd", [cat], [target], keepdims=0))
        elif not names:
            new_inits.append(const(target, onnx.TensorProto.INT64, [0], []))
        else:
            out.append(helper.make_node("Concat", names, [target], axis=0) if len(names) > 1
                       else helper.make_node("Identity", names, [target]))
    sd = dims_of(start)
    if not sd or sd[0] != (_BATCH, 1):
        raise LayerError(f"the tail from {start!r} reads the shape of a tensor across the cut, and shape inference "
                         f"cannot tell that the first axis of {start!r} is the batch, so that shape cannot be folded; "
                         "pick another layer")
    return out, new_inits


_BATCHES = (7, 11)  # two batch sizes that tell a dimension that scales with the batch from a constant


def _shapes_at_batch(proto, input_shapes: dict, batch: int) -> dict:
    """tensor_infos of ``proto`` with every input fixed: ``batch`` on axis 0, the rest from ``input_shapes``
    or the graph."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    fixed.graph.ClearField("value_info")
    inits = {i.name for i in proto.graph.initializer}
    for vi in fixed.graph.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        dims = vi.type.tensor_type.shape.dim
        given = input_shapes.get(vi.name)
        for k, d in enumerate(dims):
            if k == 0 or given is not None and len(given) == len(dims):
                value = batch if k == 0 else int(given[k])
                d.Clear()
                d.dim_value = value
    return tensor_infos(infer(fixed))
