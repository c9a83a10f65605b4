"""Tiny ONNX classifiers built with onnx.helper, with numpy references, for exact checks.

The standard one is Conv(3->K, 3x3, pad 1) -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> [Softmax].
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def conv_net(
    size: int = 8,
    channels: int = 4,
    classes: int = 5,
    softmax: bool = False,
    layout: str = "NCHW",
    batch=None,
    seed: int = 0,
    head: str = "gemm",
):
    """Returns (ModelProto, params dict). ``batch`` None gives a dynamic batch axis."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.5
    B = rng.standard_normal(channels).astype(np.float32) * 0.1
    F = rng.standard_normal((classes, channels)).astype(np.float32)
    c = rng.standard_normal(classes).astype(np.float32)
    inits = [
        numpy_helper.from_array(W, "conv_w"),
        numpy_helper.from_array(B, "conv_b"),
    ]
    nodes = []
    x_name = "input"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["input"], ["x_nchw"], perm=[0, 3, 1, 2], name="to_nchw"))
        x_name = "x_nchw"
        in_shape = [batch, size, size, 3]
    else:
        in_shape = [batch, 3, size, size]
    nodes += [
        helper.make_node("Conv", [x_name, "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["conv"], ["act"], name="relu"),
        helper.make_node("GlobalAveragePool", ["act"], ["pool"], name="gap"),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1, name="flatten"),
    ]
    if head == "gemm":
        inits += [numpy_helper.from_array(F, "fc_w"), numpy_helper.from_array(c, "fc_b")]
        nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"))
    else:  # MatMul + Add
        inits += [numpy_helper.from_array(F.T.copy(), "fc_w"), numpy_helper.from_array(c, "fc_b")]
        nodes.append(helper.make_node("MatMul", ["flat", "fc_w"], ["mm"], name="fc_mm"))
        nodes.append(helper.make_node("Add", ["mm", "fc_b"], ["logits"], name="fc_add"))
    out_name = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax"))
        out_name = "probs"
    g = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch, classes])],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m, {"W": W, "B": B, "F": F, "c": c, "layout": layout, "softmax": softmax}


def conv_forward(x: np.ndarray, p: dict):
    """numpy reference: returns (activations NCHW after Relu, logits)."""
    if p["layout"] == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    n, _, h, w = x.shape
    W, B = p["W"], p["B"]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, W.shape[0], h, w))
    for dy in range(3):
        for dx in range(3):
            patch = xp[:, :, dy:dy + h, dx:dx + w]  # n,3,h,w
            out += np.einsum("nchw,kc->nkhw", patch, W[:, :, dy, dx])
    out += B[None, :, None, None]
    act = np.maximum(out, 0)
    logits = act.mean(axis=(2, 3)) @ p["F"].T + p["c"]
    return act, logits


def np_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def save(m, path):
    onnx.save(m, str(path))
    return path
