"""The classifier head a CAM reads, found in the ONNX graph: class scores that are a linear function of a
global average pooling of one spatial tensor.

    find_linear_head(proto, output) -> LinearHead(features, weight (classes, K), bias, ...)

Walking back from the class-score output (past a Softmax and Identity/Dropout/Cast), the head is

    Gemm | MatMul [+ Add]  <-  Flatten/Reshape/Squeeze/Identity ...  <-  pooling  <-  features
    (no linear layer)      <-  Flatten/Reshape/Squeeze/Identity ...  <-  pooling  <-  class maps

where pooling is GlobalAveragePool, a ReduceMean over the two spatial axes (NCHW or NHWC, as Keras /
tf2onnx write it), or an AveragePool whose window covers the whole map without padding (torch's
AvgPool2d(7) on a 7x7 map). Without a linear layer (SqueezeNet and other fully convolutional
classifiers: a 1x1 convolution makes one map per class, then the pooling) the pooled tensor's
channels ARE the classes: the head is the identity, and the CAM of class c is the pre-pool map c.
Anything else (a LayerNorm or a non-linear op after the pooling, a pooling that keeps a grid) is
refused with the chain found, since CAM is not defined there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from .errors import LayerError
from .graph import _PASS_THROUGH, _attr, _const_value, _producers, infer, tensor_infos

_FLATTEN = {"Flatten", "Reshape", "Squeeze"}
_QDQ = {"QuantizeLinear", "DequantizeLinear"}  # onnxruntime's QDQ quantization puts a pair after each op
_SPATIAL_AXES = {(2, 3): 1, (1, 2): 3}  # pooled axes of a rank-4 tensor -> its channel axis


@dataclass
class LinearHead:
    """The classifier's last layer: scores = weight @ pool(features) + bias.

    features: name of the activation tensor that is pooled (rank 4, e.g. N x K x h x w).
    pooled: name of the pooled tensor.
    channel_axis: axis of ``features`` that carries the K channels (1 for NCHW, 3 for NHWC).
    weight: (classes, K) float32; bias: (classes,) float32 (the identity and 0 for pooled class maps).
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
    features_shape: list | None = None  # the pooled tensor's inferred shape (None: unknown)


def _pool_axes(node, proto, producers) -> list[int] | None:
    """Axes a ReduceMean reduces, from its attribute (opset < 18) or its second input."""
    axes = _attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        v = _const_value(node.input[1], proto, producers)
        axes = None if v is None else [int(a) for a in np.ravel(v)]
    return None if axes is None else list(axes)


def _global_pool(node, proto, producers, infos, seen) -> int:
    """The channel axis of ``node``'s input when ``node`` averages over the whole spatial grid, else a
    LayerError naming what it is."""
    if node.op_type == "GlobalAveragePool":
        return 1
    shape = infos.get(node.input[0], (None, 0))[0]
    if node.op_type == "ReduceMean":
        axes = _pool_axes(node, proto, producers)
        rank = len(shape) if shape is not None else 4
        norm = tuple(sorted(a % rank for a in axes)) if axes is not None else None
        if rank != 4 or norm not in _SPATIAL_AXES:
            raise _no_head(seen + [f"ReduceMean over axes {axes} (not a global spatial pooling)"])
        return _SPATIAL_AXES[norm]
    if node.op_type == "AveragePool":
        kernel = list(_attr(node, "kernel_shape", []) or [])
        pads = list(_attr(node, "pads", []) or [])
        grid = list(shape[2:]) if shape is not None and len(shape) == 4 else None
        if grid is not None and all(isinstance(g, int) for g in grid) and kernel == grid and not any(pads):
            return 1
        raise _no_head(seen + [f"AveragePool {node.name!r} with window {kernel} over a {grid} map "
                               "(not the whole map)"])
    raise _no_head(seen + [f"{node.op_type} {node.name!r} feeds the linear layer, not a global average pooling"])


def _linear_layer(node, proto, producers, seen):
    """(weight (classes, K), bias (classes,), the layer's input, its node names) of Gemm or MatMul [+ Add]."""
    if node.op_type == "Gemm":
        W = _const_value(node.input[1], proto, producers)
        if W is None:
            raise _no_head(seen + ["Gemm with a non-constant weight"])
        if _attr(node, "transA", 0):
            raise _no_head(seen + ["Gemm with transA=1"])
        W = W.T if not _attr(node, "transB", 0) else W  # make it (classes, K)
        alpha, beta = float(_attr(node, "alpha", 1.0)), float(_attr(node, "beta", 1.0))
        weight = W if alpha == 1.0 else alpha * W  # no 5 MB copy for a 1000-class head in the usual case
        C = _const_value(node.input[2], proto, producers) if len(node.input) > 2 and node.input[2] else None
        bias = beta * np.broadcast_to(C, (weight.shape[0],)) if C is not None else np.zeros(weight.shape[0])
        return weight, bias, node.input[0], [f"Gemm {node.name}"]
    names, add_bias = [], None
    if node.op_type == "Add":
        x, y = node.input[0], node.input[1]
        cx, cy = _const_value(x, proto, producers), _const_value(y, proto, producers)
        if cy is None and cx is None:
            raise _no_head(seen + ["Add of two computed tensors"])
        add_bias, name = (cy, x) if cy is not None else (cx, y)
        names.append(f"Add {node.name}")
        node = producers.get(name)
    if node is None or node.op_type != "MatMul":
        found = node.op_type if node is not None else "a graph input"
        raise _no_head(seen + [f"{found} where a Gemm or MatMul was expected"])
    W = _const_value(node.input[1], proto, producers)
    if W is None or W.ndim != 2:
        raise _no_head(seen + ["MatMul with a non-constant weight"])
    weight = W.T  # MatMul x(N,K) @ W(K,classes)
    bias = np.zeros(weight.shape[0]) if add_bias is None else np.broadcast_to(np.ravel(add_bias), (weight.shape[0],))
    return weight, bias, node.input[0], names + [f"MatMul {node.name}"]


def _walk_flatten(name, producers, head_nodes):
    """Past Flatten/Reshape/Squeeze/Identity/Dropout/Cast: (tensor, its producer)."""
    node = producers.get(name)
    while node is not None and (node.op_type in _FLATTEN or node.op_type in _PASS_THROUGH or node.op_type in _QDQ):
        head_nodes.append(f"{node.op_type} {node.name}")
        name = node.input[0]
        node = producers.get(name)
    return name, node


def find_linear_head(proto: onnx.ModelProto, output: str | None = None) -> LinearHead:
    """Walk back from the class-score output to the global pooling that feeds a linear layer (or that
    pools per-class maps directly). Raises LayerError naming what was found when there is no such head."""
    producers = _producers(proto)
    output = output or proto.graph.output[0].name
    name = output
    seen = []
    node = producers.get(name)
    while node is not None and (node.op_type in _PASS_THROUGH or node.op_type in _QDQ
                                or node.op_type in ("Softmax", "LogSoftmax", "Sigmoid")):
        seen.append(node.op_type)
        name = node.input[0]
        node = producers.get(name)
    logits = name
    if node is None:
        raise LayerError(f"the output {output!r} is a graph input; there is no classification head")
    head_nodes: list[str] = []
    infos = tensor_infos(infer(proto))
    pooled, pool = _walk_flatten(name, producers, head_nodes)
    if pool is not None and pool.op_type in ("GlobalAveragePool", "ReduceMean", "AveragePool"):
        weight = bias = None  # class maps pooled straight into the scores
    else:
        head_nodes = []
        weight, bias, name, head_nodes = _linear_layer(node, proto, producers, seen)
        pooled, pool = _walk_flatten(name, producers, head_nodes)
        if pool is None:
            raise _no_head(seen + ["the linear layer reads a graph input directly"])
    channel_axis = _global_pool(pool, proto, producers, infos, seen)
    head_nodes.append(f"{pool.op_type} {pool.name}")
    features = pool.input[0]
    if weight is None:
        shape = infos.get(features, (None, 0))[0]
        k = shape[channel_axis] if shape is not None and len(shape) == 4 else None
        if not isinstance(k, int):
            raise _no_head(seen + [f"pooled class maps {features!r} of unknown channel count"])
        weight, bias = np.eye(k), np.zeros(k)
        head_nodes.append("class maps (no linear layer: the pooled channels are the classes)")
    return LinearHead(features=features, pooled=pooled, channel_axis=channel_axis,
                      weight=np.asarray(weight, np.float32), bias=np.asarray(bias, np.float32).reshape(-1),
                      logits=logits, nodes=list(reversed(head_nodes)),
                      features_shape=infos.get(features, (None, 0))[0])


def _no_head(found: list[str]) -> LayerError:
    return LayerError(
        "the model has no linear head on global average pooling (needed by CAM): walking back from the "
        f"output found {' <- '.join(found)}. Use Grad-CAM or Score-CAM, which work on any layer"
    )
