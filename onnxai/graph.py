"""Pure ONNX graph surgery: no runtime, ModelProto in, ModelProto or facts out.

- ``read_model``: load a file with errors that say what is wrong with it.
- ``list_layers``: every tensor a node produces, with its inferred shape (grids.py reads which of
  them are maps over the picture, for CAMs).
- ``expose``: add intermediate tensors as extra graph outputs (works when shape inference fails).
- ``find_linear_head``: global pooling -> optional flatten/reshape -> Gemm or MatMul(+Add), with its
  weights and the activation tensor that feeds the pooling.
- ``extract_tail``: the sub-model from one named tensor to the outputs.

A classifier's two ends (a dynamic batch axis, skl2onnx's ZipMap, class labels) are graph_ends.py's.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from .errors import LayerError, ModelError

# Ops that pass a tensor through unchanged in value (for walking the head of a network).
_PASS_THROUGH = {"Identity", "Dropout", "Cast"}
_FLATTEN = {"Flatten", "Reshape", "Squeeze"}


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


def infer(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Shape inference that never fails: returns the input unchanged if inference breaks."""
    try:
        return shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    except Exception:
        try:
            return shape_inference.infer_shapes(proto, strict_mode=False)
        except Exception:
            return proto


def _dims(type_proto) -> list | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in type_proto.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def tensor_infos(proto: onnx.ModelProto) -> dict[str, tuple[list | None, int]]:
    """name -> (shape or None, onnx elem type) for graph inputs, outputs and inferred value_info."""
    out: dict[str, tuple[list | None, int]] = {}
    g = proto.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        elem = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
        out[vi.name] = (_dims(vi.type), elem)
    for init in g.initializer:
        out.setdefault(init.name, (list(init.dims), init.data_type))
    return out


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
    names = [names] if isinstance(names, str) else list(names)
    known = _all_tensor_names(proto)
    for name in names:
        if name not in known:
            raise missing_layer_error(name, proto)
    inferred = infer(proto)
    infos = tensor_infos(inferred)
    out = copy.deepcopy(proto)
    present = {o.name for o in out.graph.output}
    for name in names:
        if name in present:
            continue
        shape, elem = infos.get(name, (None, 0))
        if not elem:
            elem = onnx.TensorProto.FLOAT
        if shape:
            shape = list(shape)
            shape[0] = None  # the batch follows the input; leave it open
        vi = helper.make_tensor_value_info(name, elem, shape)
        out.graph.output.append(vi)
        present.add(name)
    return out


def input_names(proto: onnx.ModelProto) -> list[str]:
    """Graph inputs that are real inputs (not initializers listed as inputs, as old exporters do)."""
    inits = {i.name for i in proto.graph.initializer}
    return [i.name for i in proto.graph.input if i.name not in inits]


# --------------------------------------------------------------------------- linear head


@dataclass
class LinearHead:
    """The classifier's last layer: scores = weight @ pool(features) + bias.

    features: name of the activation tensor that is pooled (rank 4, e.g. N x K x h x w).
    pooled: name of the pooled tensor.
    channel_axis: axis of ``features`` that carries the K channels (1 for NCHW, 3 for NHWC).
    weight: (classes, K) float32; bias: (classes,) float32.
    logits: name of the tensor the head produces (before any softmax).
    nodes: names/op types of the nodes that make the head, for messages.
    """

    features: str
    pooled: str
    channel_axis: int
    weight: np.ndarray
    bias: np.ndarray
    logits: str
    nodes: list[str]


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
    return None


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _pool_axes(node, proto, producers) -> list[int] | None:
    """Axes a ReduceMean reduces, from its attribute (opset < 18) or its second input."""
    axes = _attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        v = _const_value(node.input[1], proto, producers)
        axes = None if v is None else [int(a) for a in np.ravel(v)]
    return None if axes is None else list(axes)


def find_linear_head(proto: onnx.ModelProto, output: str | None = None) -> LinearHead:
    """Walk back from the class-score output to the global pooling that feeds a linear layer.

    Raises LayerError naming what was found instead when the model has no such head.
    """
    producers = _producers(proto)
    output = output or proto.graph.output[0].name
    name = output
    seen = []
    node = producers.get(name)
    # skip a final softmax and pass-through ops
    while node is not None and (node.op_type in _PASS_THROUGH or node.op_type in ("Softmax", "LogSoftmax")):
        seen.append(node.op_type)
        name = node.input[0]
        node = producers.get(name)
    logits = name
    if node is None:
        raise LayerError(f"the output {output!r} is a graph input; there is no classification head")
    weight = bias = None
    head_nodes = []
    if node.op_type == "Gemm":
        a, b = node.input[0], node.input[1]
        W = _const_value(b, proto, producers)
        if W is None:
            raise _no_head(seen + ["Gemm with a non-constant weight"])
        if _attr(node, "transA", 0):
            raise _no_head(seen + ["Gemm with transA=1"])
        W = W.T if not _attr(node, "transB", 0) else W  # make it (classes, K)
        alpha, beta = float(_attr(node, "alpha", 1.0)), float(_attr(node, "beta", 1.0))
        weight = alpha * W
        C = _const_value(node.input[2], proto, producers) if len(node.input) > 2 and node.input[2] else None
        bias = beta * np.broadcast_to(C, (weight.shape[0],)) if C is not None else np.zeros(weight.shape[0])
        head_nodes.append(f"Gemm {node.name}")
        name = a
    else:
        add_bias = None
        if node.op_type == "Add":
            x, y = node.input[0], node.input[1]
            cx, cy = _const_value(x, proto, producers), _const_value(y, proto, producers)
            if cy is not None:
                add_bias, name = cy, x
            elif cx is not None:
                add_bias, name = cx, y
            else:
                raise _no_head(seen + ["Add of two computed tensors"])
            head_nodes.append(f"Add {node.name}")
            node = producers.get(name)
        if node is None or node.op_type != "MatMul":
            found = node.op_type if node is not None else "a graph input"
            raise _no_head(seen + [f"{found} where a Gemm or MatMul was expected"])
        W = _const_value(node.input[1], proto, producers)
        if W is None or W.ndim != 2:
            raise _no_head(seen + ["MatMul with a non-constant weight"])
        weight = W.T  # MatMul x(N,K) @ W(K,classes)
        bias = np.zeros(weight.shape[0]) if add_bias is None else np.broadcast_to(np.ravel(add_bias), (weight.shape[0],))
        head_nodes.append(f"MatMul {node.name}")
        name = node.input[0]
    node = producers.get(name)
    while node is not None and (node.op_type in _FLATTEN or node.op_type in _PASS_THROUGH):
        head_nodes.append(f"{node.op_type} {node.name}")
        name = node.input[0]
        node = producers.get(name)
    pooled = name
    if node is None:
        raise _no_head(seen + ["the linear layer reads a graph input directly"])
    infos = tensor_infos(infer(proto))
    if node.op_type == "GlobalAveragePool":
        channel_axis = 1
    elif node.op_type == "ReduceMean":
        axes = _pool_axes(node, proto, producers)
        shape = infos.get(node.input[0], (None, 0))[0]
        rank = len(shape) if shape is not None else 4
        norm = sorted(a % rank for a in axes) if axes is not None else None
        if rank != 4 or norm not in ([2, 3], [1, 2]):
            raise _no_head(seen + [f"ReduceMean over axes {axes} (not a global spatial pooling)"])
        channel_axis = 1 if norm == [2, 3] else 3
    else:
        raise _no_head(seen + [f"{node.op_type} {node.name!r} feeds the linear layer, not a global average pooling"])
    head_nodes.append(f"{node.op_type} {node.name}")
    features = node.input[0]
    weight = np.asarray(weight, np.float32)
    bias = np.asarray(bias, np.float32).reshape(-1)
    return LinearHead(features=features, pooled=pooled, channel_axis=channel_axis, weight=weight,
                      bias=bias, logits=logits, nodes=list(reversed(head_nodes)))


def _no_head(found: list[str]) -> LayerError:
    return LayerError(
        "the model has no linear head on global average pooling (needed by CAM): walking back from the "
        f"output found {' <- '.join(found)}. Use Grad-CAM or Score-CAM, which work on any layer"
    )


# --------------------------------------------------------------------------- tail sub-model


def extract_tail(proto: onnx.ModelProto, start: str, outputs: list[str] | None = None) -> onnx.ModelProto:
    """The sub-model that computes ``outputs`` (default: the graph outputs) from tensor ``start``.

    Raises LayerError when the outputs also depend on other non-constant tensors (a skip
    connection around ``start``): then ``start`` does not cut the graph in two.
    """
    producers = _producers(proto)
    if start not in producers and start not in input_names(proto):
        raise missing_layer_error(start, proto)
    outputs = outputs or [o.name for o in proto.graph.output]
    inits = {i.name for i in proto.graph.initializer}
    graph_inputs = set(input_names(proto))
    needed_nodes = []
    visited = set()
    stack = list(outputs)
    leaks = set()
    while stack:
        t = stack.pop()
        if t in visited or t == start or t in inits or not t:
            continue
        visited.add(t)
        node = producers.get(t)
        if node is None:
            if t in graph_inputs:
                leaks.add(t)
            continue
        if id(node) in {id(n) for n in needed_nodes}:
            continue
        needed_nodes.append(node)
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
    used = {i for n in needed_nodes for i in n.input}
    for n in needed_nodes:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                used.update(i for sn in a.g.node for i in sn.input)
    infos = tensor_infos(infer(proto))
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
    graph = helper.make_graph(
        [copy.deepcopy(n) for n in needed_nodes],
        f"{proto.graph.name}_tail_from_{start}",
        [start_vi],
        out_vis,
        initializer=[copy.deepcopy(i) for i in proto.graph.initializer if i.name in used],
    )
    tail = helper.make_model(graph, opset_imports=list(proto.opset_import), producer_name="onnxai")
    tail.ir_version = proto.ir_version
    return tail
