"""Every hand-built ONNX model the tests use, built with onnx.helper, with numpy references for exact checks.

Pictures: conv_net (the standard one: Conv(3->K, 3x3, pad 1) -> Relu -> GlobalAveragePool -> Flatten ->
Gemm -> [Softmax]) and its variants, region_net (class 1 looks at one known region), cam_net (stride-2
conv with an optional non-linear tail, for the CAMs), token_net (a layer of tokens).
Tables: tabular_net, mlp_model, linear_model, linear_table_net, columns_net, and sklearn_onnx (skl2onnx).
Loaders (region_model, conv_model) return onnxai Models with the preprocessing the tests use;
tests/conftest.py exposes the common ones as fixtures.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxai

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


def conv3x3(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """numpy reference of a 3x3 convolution with padding 1, no bias: (n, 3, h, w) -> (n, K, h, w) float64."""
    n, _, h, w = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, W.shape[0], h, w))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nchw,kc->nkhw", xp[:, :, dy:dy + h, dx:dx + w], W[:, :, dy, dx])
    return out


def conv_forward(x: np.ndarray, p: dict):
    """numpy reference: returns (activations NCHW after Relu, logits)."""
    if p["layout"] == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    W, B = p["W"], p["B"]
    out = conv3x3(x, W)
    out += B[None, :, None, None]
    act = np.maximum(out, 0)
    logits = act.mean(axis=(2, 3)) @ p["F"].T + p["c"]
    return act, logits


def save(m, path):
    onnx.save(m, str(path))
    return path


# --------------------------------------------------------------------------- variants (added for the
# foundation tests: each takes or builds a small model and says how to compute its reference)


def _finish(nodes, inputs, outputs, inits, name="tiny_variant", extra_opsets=()):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    m = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, v) for d, v in extra_opsets],
        producer_name="tests",
    )
    m.ir_version = 9
    return m


def reshape_head_net(shape=(1, -1), **kw):
    """conv_net with its Flatten replaced by a Reshape to the constant ``shape`` (batch 1 baked in).

    Same numbers as conv_net for a batch of 1; with (1, -1) ``make_batch_dynamic`` must refuse it.
    """
    kw.setdefault("batch", 1)
    m, p = conv_net(**kw)
    g = m.graph
    g.initializer.append(numpy_helper.from_array(np.asarray(shape, np.int64), "flat_shape"))
    for i, n in enumerate(g.node):
        if n.op_type == "Flatten":
            g.node[i].CopyFrom(helper.make_node("Reshape", ["pool", "flat_shape"], ["flat"], name="flatten"))
    onnx.checker.check_model(m)
    return m, p


def batch_mixing_net(**kw):
    """A fixed-batch-1 conv_net whose output is 2*logits - mean_over_batch(logits).

    For one input that equals the logits; for a batch it mixes samples, so the batch-dynamic rewrite
    (which succeeds structurally) changes results and must be rejected by the numerical check.
    """
    kw.setdefault("batch", 1)
    m, p = conv_net(**kw)
    g = m.graph
    classes = p["F"].shape[0]
    g.initializer.append(numpy_helper.from_array(np.asarray(2.0, np.float32), "two"))
    g.node.extend([
        helper.make_node("ReduceMean", ["logits"], ["batch_mean"], axes=[0], keepdims=1, name="batch_mean"),
        helper.make_node("Mul", ["logits", "two"], ["twice"], name="twice"),
        helper.make_node("Sub", ["twice", "batch_mean"], ["mixed"], name="mixed"),
    ])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("mixed", TensorProto.FLOAT, [kw["batch"], classes]))
    onnx.checker.check_model(m)
    return m, p


def nan_net(**kw):
    """conv_net whose logits have NaN added to them (every score is NaN)."""
    m, p = conv_net(**kw)
    g = m.graph
    classes = p["F"].shape[0]
    g.initializer.append(numpy_helper.from_array(np.full(classes, np.nan, np.float32), "nan_bias"))
    g.node.append(helper.make_node("Add", ["logits", "nan_bias"], ["nan_logits"], name="add_nan"))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("nan_logits", TensorProto.FLOAT, [kw.get("batch"), classes]))
    onnx.checker.check_model(m)
    return m, p


def with_extra_outputs(m, outputs, first=True):
    """A copy of ``m`` with extra graph outputs: ``outputs`` is a list of (name, elem_type, shape) of
    tensors the graph already computes, or (name, elem_type, shape, node) to add a node that makes it."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    g = m.graph
    vis = []
    for spec in outputs:
        name, elem, shape = spec[:3]
        if len(spec) > 3:
            g.node.append(spec[3])
        vis.append(helper.make_tensor_value_info(name, elem, shape))
    old = list(g.output)
    del g.output[:]
    g.output.extend(vis + old if first else old + vis)
    onnx.checker.check_model(m)
    return m


def gemm_transb0_net(**kw):
    """conv_net whose Gemm stores its weight as (K, classes) with transB=0 (same numbers)."""
    m, p = conv_net(**kw)
    g = m.graph
    for i, init in enumerate(g.initializer):
        if init.name == "fc_w":
            g.initializer[i].CopyFrom(numpy_helper.from_array(p["F"].T.copy(), "fc_w"))
    for i, n in enumerate(g.node):
        if n.op_type == "Gemm":
            g.node[i].CopyFrom(helper.make_node("Gemm", list(n.input), list(n.output), transB=0, name=n.name))
    onnx.checker.check_model(m)
    return m, p


def tabular_net(features: int = 4, classes: int = 3, seed: int = 0):
    """A (N, features) -> (N, classes) MatMul + Add model: not an image model."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((features, classes)).astype(np.float32)
    b = rng.standard_normal(classes).astype(np.float32)
    m = _finish(
        [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["logits"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])],
        [numpy_helper.from_array(W, "w"), numpy_helper.from_array(b, "b")],
        name="tabular",
    )
    onnx.checker.check_model(m)
    return m, {"W": W, "b": b}


def skip_net(size: int = 8, channels: int = 4, classes: int = 5, seed: int = 0):
    """input -> conv -> relu ("act") -> conv2 ("z"); "s" = z + act (skip) -> GAP -> Flatten -> Gemm.

    "z" is bypassed by the skip connection, "s" cuts the graph in two."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.5
    W2 = rng.standard_normal((channels, channels, 1, 1)).astype(np.float32) * 0.5
    F = rng.standard_normal((classes, channels)).astype(np.float32)
    c = rng.standard_normal(classes).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "conv_w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["conv"], ["act"], name="relu"),
        helper.make_node("Conv", ["act", "conv2_w"], ["z"], name="conv2"),
        helper.make_node("Add", ["z", "act"], ["s"], name="skip_add"),
        helper.make_node("GlobalAveragePool", ["s"], ["pool"], name="gap"),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
    ]
    m = _finish(
        nodes,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])],
        [numpy_helper.from_array(W, "conv_w"), numpy_helper.from_array(W2, "conv2_w"),
         numpy_helper.from_array(F, "fc_w"), numpy_helper.from_array(c, "fc_b")],
        name="skip",
    )
    onnx.checker.check_model(m)
    return m, {"W": W, "W2": W2, "F": F, "c": c}


def no_pool_net(size: int = 4, channels: int = 2, classes: int = 3, seed: int = 0):
    """input -> conv -> relu -> Flatten -> Gemm on all K*h*w values: no global pooling in the head."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((channels, 3, 3, 3)).astype(np.float32)
    F = rng.standard_normal((classes, channels * size * size)).astype(np.float32)
    c = rng.standard_normal(classes).astype(np.float32)
    m = _finish(
        [
            helper.make_node("Conv", ["input", "conv_w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("Relu", ["conv"], ["act"], name="relu"),
            helper.make_node("Flatten", ["act"], ["flat"], axis=1, name="flatten"),
            helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
        ],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])],
        [numpy_helper.from_array(W, "conv_w"), numpy_helper.from_array(F, "fc_w"), numpy_helper.from_array(c, "fc_b")],
        name="no_pool",
    )
    onnx.checker.check_model(m)
    return m, {"W": W, "F": F, "c": c}


def nhwc_reduce_net(size: int = 6, channels: int = 4, classes: int = 3, seed: int = 0):
    """Channels-last all the way: input (N,h,w,3) @ P(3,K) -> Relu ("act", N,h,w,K) -> ReduceMean over
    axes [1, 2] -> MatMul(K, classes) + Add. The linear head's features have their channels on axis 3."""
    rng = np.random.default_rng(seed)
    P = rng.standard_normal((3, channels)).astype(np.float32)
    F = rng.standard_normal((classes, channels)).astype(np.float32)
    c = rng.standard_normal(classes).astype(np.float32)
    m = _finish(
        [
            helper.make_node("MatMul", ["input", "proj"], ["proj_out"], name="pointwise"),
            helper.make_node("Relu", ["proj_out"], ["act"], name="relu"),
            helper.make_node("ReduceMean", ["act"], ["pool"], axes=[1, 2], keepdims=0, name="pool"),
            helper.make_node("MatMul", ["pool", "fc_w"], ["mm"], name="fc_mm"),
            helper.make_node("Add", ["fc_b", "mm"], ["logits"], name="fc_add"),
        ],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, size, size, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])],
        [numpy_helper.from_array(P, "proj"), numpy_helper.from_array(F.T.copy(), "fc_w"),
         numpy_helper.from_array(c, "fc_b")],
        name="nhwc_reduce",
    )
    onnx.checker.check_model(m)
    return m, {"P": P, "F": F, "c": c}


def contrib_gelu_net(size: int = 8, channels: int = 4, classes: int = 5, seed: int = 0):
    """conv_net with its Relu replaced by com.microsoft Gelu: onnxruntime runs it, but ONNX shape
    inference knows nothing of that domain, so "act" and everything after it have no inferred shape.
    Reference: act = gelu(conv) with gelu(v) = v * Phi(v)."""
    m, p = conv_net(size=size, channels=channels, classes=classes, seed=seed)
    g = m.graph
    for i, n in enumerate(g.node):
        if n.op_type == "Relu":
            g.node[i].CopyFrom(helper.make_node("Gelu", ["conv"], ["act"], name="gelu", domain="com.microsoft"))
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return m, p


def conv_forward_gelu(x: np.ndarray, p: dict):
    """numpy reference of contrib_gelu_net: (act, logits)."""
    from math import erf, sqrt

    W, B = p["W"], p["B"]
    conv = conv3x3(x, W)
    conv += B[None, :, None, None]
    phi = 0.5 * (1.0 + np.vectorize(erf)(conv / sqrt(2.0)))
    act = conv * phi
    return act, act.mean(axis=(2, 3)) @ p["F"].T + p["c"]


def region_net(size: int = 16, region=(4, 10, 4, 10), layout: str = "NCHW", scale: float = 4.0):
    """Two classes; class 1's logit is ``scale`` x the mean of all channels inside ``region`` only.

    region = (top, bottom, left, right), half-open. Returns (ModelProto, spatial mask (size, size)).
    Input -> Mul(mask) -> ReduceMean(all but batch) -> MatMul([[0, scale]]) -> logits.
    """
    t, b, l, r = region
    mask = np.zeros((size, size), np.float32)
    mask[t:b, l:r] = 1.0
    frac = mask.mean()
    if layout == "NCHW":
        m4 = mask[None, None]
        in_shape = [None, 3, size, size]
    else:
        m4 = mask[None, :, :, None]
        in_shape = [None, size, size, 3]
    w = np.array([[0.0, scale / frac]], np.float32)  # (1, 2): mean over everything / frac = region mean
    inits = [numpy_helper.from_array(m4, "region_mask"), numpy_helper.from_array(w, "head_w"),
             numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")]
    nodes = [
        helper.make_node("Mul", ["input", "region_mask"], ["masked"], name="mask"),
        helper.make_node("ReduceMean", ["masked", "axes"], ["pooled"], keepdims=0, name="pool"),
        helper.make_node("Unsqueeze", ["pooled", "one"], ["pooled2"], name="unsq"),
        helper.make_node("MatMul", ["pooled2", "head_w"], ["logits"], name="head"),
    ]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
    g = helper.make_graph(
        nodes, "region",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], producer_name="tests")
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m, mask


def region_picture(size: int = 16, region=(4, 10, 4, 10), seed: int = 0) -> np.ndarray:
    """A mid-grey noisy picture, bright inside the region: class 1 wins on it."""
    rng = np.random.default_rng(seed)
    pic = rng.integers(90, 140, (size, size, 3)).astype(np.uint8)
    t, b, l, r = region
    pic[t:b, l:r] = 230
    return pic


def region_files(folder):
    """(model path, picture path): region_net and region_picture saved in folder, for command-line tests."""
    from PIL import Image

    path, pic = folder / "m.onnx", folder / "p.png"
    onnx.save(region_net()[0], path)
    Image.fromarray(region_picture()).save(pic)
    return path, pic


# --------------------------------------------------------------------------- the CAM tests' models


def cam_net(size=12, channels=4, classes=5, softmax=False, tail="none", seed=0, dead=()):
    """(ModelProto, params). ``dead``: {channel: bias} channels whose conv weights are 0 (constant maps)."""
    rng = np.random.default_rng(seed)
    p = {
        "W": rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.5,
        "B": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "W2": rng.standard_normal((channels, channels, 1, 1)).astype(np.float32) * 0.7,
        "B2": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "F": rng.standard_normal((classes, channels)).astype(np.float32),
        "c": rng.standard_normal(classes).astype(np.float32),
        "tail": tail,
    }
    for k, b in dict(dead).items():
        p["W"][k] = 0.0
        p["B"][k] = b
    inits = [numpy_helper.from_array(p[n], n) for n in ("W", "B", "F", "c")]
    nodes = [
        helper.make_node("Conv", ["input", "W", "B"], ["conv"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["conv"], ["act"]),
    ]
    feat = "act"
    if tail == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["act"], ["feat"]))
        feat = "feat"
    elif tail == "conv":
        inits += [numpy_helper.from_array(p["W2"], "W2"), numpy_helper.from_array(p["B2"], "B2")]
        nodes += [helper.make_node("Conv", ["act", "W2", "B2"], ["conv2"]), helper.make_node("Relu", ["conv2"], ["feat"])]
        feat = "feat"
    nodes += [
        helper.make_node("GlobalAveragePool", [feat], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "F", "c"], ["logits"], transB=1),
    ]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out = "probs"
    g = helper.make_graph(nodes, "cam_net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, classes])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m, p


def conv_s2(x, W, B):
    """3x3 conv, pad 1, stride 2, float64: (n, 3, H, W) -> (n, K, ceil(H/2), ceil(W/2))."""
    n, _, h, w = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ho, wo = (h + 1) // 2, (w + 1) // 2
    out = np.zeros((n, W.shape[0], ho, wo))
    for dy in range(3):
        for dx in range(3):
            patch = xp[:, :, dy:dy + 2 * ho:2, dx:dx + 2 * wo:2]
            out += np.einsum("nchw,kc->nkhw", patch, W[:, :, dy, dx].astype(np.float64))
    return out + p_b(B)


def p_b(B):
    return B.astype(np.float64)[None, :, None, None]


def cam_forward(x, p):
    """numpy forward of cam_net: (act, feat, logits), float64."""
    act = np.maximum(conv_s2(x, p["W"], p["B"]), 0)
    if p["tail"] == "sigmoid":
        feat = 1 / (1 + np.exp(-act))
    elif p["tail"] == "conv":
        pre = np.einsum("nkhw,mk->nmhw", act, p["W2"][:, :, 0, 0].astype(np.float64)) + p_b(p["B2"])
        feat = np.maximum(pre, 0)
    else:
        feat = act
    logits = feat.mean(axis=(2, 3)) @ p["F"].T.astype(np.float64) + p["c"]
    return act, feat, logits


def token_net(size=8, channels=3, classes=4, seed=0):
    """Conv 2x2/2 patches -> Reshape/Transpose to tokens (N, 16, C) -> Relu ("tokens") -> ReduceMean over
    tokens -> Gemm. The tokens are the conv output ("patches", N x C x 4 x 4) rearranged, no prefix."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((channels, 3, 2, 2)).astype(np.float32)
    F = rng.standard_normal((classes, channels)).astype(np.float32)
    c = rng.standard_normal(classes).astype(np.float32)
    side = size // 2
    nodes = [
        helper.make_node("Conv", ["input", "W"], ["patches"], strides=[2, 2], kernel_shape=[2, 2]),
        helper.make_node("Reshape", ["patches", "shape"], ["flat_patches"]),
        helper.make_node("Transpose", ["flat_patches"], ["pre_tokens"], perm=[0, 2, 1]),
        helper.make_node("Sigmoid", ["pre_tokens"], ["tokens"]),
        helper.make_node("ReduceMean", ["tokens", "axes"], ["pooled"], keepdims=0),
        helper.make_node("Gemm", ["pooled", "F", "c"], ["logits"], transB=1),
    ]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(F, "F"), numpy_helper.from_array(c, "c"),
             numpy_helper.from_array(np.array([0, channels, side * side], np.int64), "shape"),
             numpy_helper.from_array(np.array([1], np.int64), "axes")]
    g = helper.make_graph(nodes, "tokens", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


CAM_SIZE = 12


def cam_picture(size=CAM_SIZE, seed=1):
    """A random uint8 (size, size, 3) picture."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype(np.uint8)


def cam_load(m, size=CAM_SIZE):
    return onnxai.Model(m, providers="cpu", preprocess={"resize": size, "crop": size})


def cam_setup(**kw):
    """cam_net(**kw) loaded at CAM_SIZE: (Model, params, x in model space, crop) for cam_picture()."""
    m, p = cam_net(**kw)
    model = cam_load(m)
    x, crop = model.prepare(cam_picture())
    return model, p, x, crop


def cam_up(a, align=False):
    """A low-resolution map resized to CAM_SIZE x CAM_SIZE, bilinear, float64."""
    from onnxai import kernels

    return kernels.resize(np.asarray(a, np.float64), CAM_SIZE, CAM_SIZE, method="bilinear", align_corners=align)


# --------------------------------------------------------------------------- tables


def mlp_model(M: int, C: int = 3, seed: int = 0, softmax: bool = True):
    """x (n, M) -> Tanh(x W1 + b1) W2 + b2 -> [Softmax]: a nonlinear tabular classifier."""
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((M, 6)).astype(np.float32)
    b1 = rng.standard_normal(6).astype(np.float32)
    W2 = rng.standard_normal((6, C)).astype(np.float32)
    b2 = rng.standard_normal(C).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Tanh", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "W2"], ["o0"]),
        helper.make_node("Add", ["o0", "b2"], ["logits"]),
    ]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out = "probs"
    inits = [numpy_helper.from_array(a, n) for a, n in ((W1, "W1"), (b1, "b1"), (W2, "W2"), (b2, "b2"))]
    return _table_model(nodes, inits, M, C, out)


def linear_model(w: np.ndarray, c: float):
    """x (n, M) -> x w + c, one output column: MatMul + Add."""
    M = w.shape[0]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "c"], ["y"])]
    inits = [numpy_helper.from_array(w.reshape(M, 1).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([c], np.float32), "c")]
    return _table_model(nodes, inits, M, 1, "y")


def _table_model(nodes, inits, M, C, out):
    g = helper.make_graph(nodes, "tab", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, M])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, C])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return onnxai.load(m, providers="cpu")


def linear_table_net():
    """x (n, 3) -> x W, two logits, no softmax (ModelProto)."""
    W = np.array([[1.0, -1.0], [2.0, 0.0], [0.0, 0.5]], np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "lin",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
                          initializer=[numpy_helper.from_array(W, "W")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m


def sklearn_onnx(est, X, zipmap=True):
    """A fitted scikit-learn estimator as an ONNX model (skips the test when skl2onnx is missing)."""
    skl2onnx = pytest.importorskip("skl2onnx")
    return skl2onnx.to_onnx(est, X[:1].astype(np.float32), options={id(est): {"zipmap": zipmap}}, target_opset=17)


def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_table_net(W: np.ndarray):
    """x (n, M) -> softmax(x W) (ModelProto): which features matter, and how, is written in W (M, C)."""
    M, C = W.shape
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["z"]),
                           helper.make_node("Softmax", ["z"], ["p"], axis=1)], "softmax_table",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, M])],
                          [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, C])],
                          initializer=[numpy_helper.from_array(np.asarray(W, np.float32), "W")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 9
    return m


def columns_net():
    """Three inputs, a float, an int64 and a float (n, 2) block, concatenated and scored linearly:
    (ModelProto, w) with softmax(concat(a, b, c) @ w)."""
    w = np.array([[1.0, -1.0], [0.5, 0.25], [2.0, 0.0], [-1.0, 3.0]], np.float32)
    nodes = [helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
             helper.make_node("Concat", ["a", "bf", "c"], ["x"], axis=1),
             helper.make_node("MatMul", ["x", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["p"], axis=1)]
    g = helper.make_graph(nodes, "cols",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1]),
                           helper.make_tensor_value_info("b", TensorProto.INT64, [None, 1]),
                           helper.make_tensor_value_info("c", TensorProto.FLOAT, [None, 2])],
                          [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 2])],
                          initializer=[numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m, w


# --------------------------------------------------------------------------- loaded models


def region_model(size: int = 16, region=(4, 10, 4, 10), layout: str = "NCHW", scale: float = 4.0,
                 mean: float = 0.5, std: float = 0.25, batch_size=None):
    """(onnxai Model, region mask) of region_net, normalised with mean/std and no resize."""
    m, mask = region_net(size=size, region=region, layout=layout, scale=scale)
    pre = onnxai.Preprocess(resize=None, crop=size, mean=(mean,) * 3, std=(std,) * 3, layout=layout)
    return onnxai.load(m, preprocess=pre, batch_size=batch_size, providers="cpu"), mask


def conv_model(size: int = 16, channels: int = 8, classes: int = 3, seed: int = 0, mean: float = 0.5,
               std: float = 0.25):
    """onnxai Model of conv_net, normalised with mean/std and no resize."""
    m, _ = conv_net(size=size, channels=channels, classes=classes, seed=seed)
    pre = onnxai.Preprocess(resize=None, crop=size, mean=(mean,) * 3, std=(std,) * 3)
    return onnxai.load(m, preprocess=pre, providers="cpu")


def softmax_conv_case(size: int = 12, seed: int = 0):
    """(Model of a softmax conv_net read with cropped=True pictures in mind, a random size x size picture)."""
    proto, _ = conv_net(size=size, channels=4, classes=3, softmax=True)
    picture = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)
    return onnxai.load(proto, providers="cpu"), picture


# --------------------------------------------------------------------------- exporter-shaped graphs
# The shapes other exporters produce around the layers a CAM reads (issue 15): a head LayerNorm on a
# 1x1 grid (timm ConvNeXt), attention-internal (B, T, heads, d) tensors (HF ViT), NCHW inner layers behind
# an NHWC input (tf2onnx), a layer only its shape can place (ambiguous), and a uint8 input.


def _t(rng, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _inits(**arrays):
    return [numpy_helper.from_array(np.asarray(v), k) for k, v in arrays.items()]


def _image_in(size, layout="NCHW", elem=TensorProto.FLOAT):
    shape = [None, 3, size, size] if layout == "NCHW" else [None, size, size, 3]
    return [helper.make_tensor_value_info("input", elem, shape)]


def _logits_out(classes):
    return [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])]


def convnext_like_net(size=16, dim=8, classes=3, seed=0):
    """timm ConvNeXt's shape: stem Conv 4x4/4 -> a block computed NHWC (Transpose, LayerNormalization,
    MatMul, Relu, MatMul, Transpose back) + the stem ("stage", N x dim x 4 x 4) -> GlobalAveragePool ->
    LayerNorm2d as Transpose / LayerNormalization ("head_norm", N x 1 x 1 x dim) / Transpose -> Flatten ->
    Gemm. No linear head on the pooling (a LayerNorm sits between); the maps have a 4x4 grid."""
    rng = np.random.default_rng(seed)
    inits = _inits(stem_w=_t(rng, dim, 3, 4, 4), ln_g=np.ones(dim, np.float32), ln_b=np.zeros(dim, np.float32),
                   fc1=_t(rng, dim, 2 * dim), fc2=_t(rng, 2 * dim, dim), F=_t(rng, classes, dim, scale=1.0),
                   c=np.zeros(classes, np.float32))
    N = helper.make_node
    nodes = [
        N("Conv", ["input", "stem_w"], ["stem"], kernel_shape=[4, 4], strides=[4, 4]),
        N("Transpose", ["stem"], ["blk_nhwc"], perm=[0, 2, 3, 1]),
        N("LayerNormalization", ["blk_nhwc", "ln_g", "ln_b"], ["blk_ln"], axis=-1),
        N("MatMul", ["blk_ln", "fc1"], ["blk_fc1"]),
        N("Relu", ["blk_fc1"], ["blk_act"]),
        N("MatMul", ["blk_act", "fc2"], ["blk_fc2"]),
        N("Transpose", ["blk_fc2"], ["blk_out"], perm=[0, 3, 1, 2]),
        N("Add", ["stem", "blk_out"], ["stage"]),
        N("GlobalAveragePool", ["stage"], ["pool"]),
        N("Transpose", ["pool"], ["pool_nhwc"], perm=[0, 2, 3, 1]),
        N("LayerNormalization", ["pool_nhwc", "ln_g", "ln_b"], ["head_norm"], axis=-1),
        N("Transpose", ["head_norm"], ["head_nchw"], perm=[0, 3, 1, 2]),
        N("Flatten", ["head_nchw"], ["flat"], axis=1),
        N("Gemm", ["flat", "F", "c"], ["logits"], transB=1),
    ]
    m = _finish(nodes, _image_in(size), _logits_out(classes), inits, "convnext_like")
    onnx.checker.check_model(m)
    return m


def vit_like_net(size=16, patch=4, dim=8, heads=2, classes=3, seed=0):
    """HF ViT's shape: patch Conv -> Reshape (N, dim, T) -> Transpose to tokens -> Pad one token in front
    + position embedding (a class token, no Shape op) = "tokens0" (N, 17, dim) -> LayerNormalization ->
    attention with (N, T, heads, d) reshapes ("q_heads", "ctx_heads"), (N, heads, T, T) scores -> Add
    ("resid") -> LayerNormalization ("final_norm") -> Gather of token 0 -> Gemm."""
    rng = np.random.default_rng(seed)
    g = size // patch
    T, d = g * g + 1, dim // heads
    inits = _inits(pw=_t(rng, dim, 3, patch, patch), pos=_t(rng, 1, T, dim), ln_g=np.ones(dim, np.float32),
                   ln_b=np.zeros(dim, np.float32), wq=_t(rng, dim, dim), wk=_t(rng, dim, dim), wv=_t(rng, dim, dim),
                   wo=_t(rng, dim, dim), F=_t(rng, classes, dim, scale=1.0), c=np.zeros(classes, np.float32),
                   flat_shape=np.array([0, dim, g * g], np.int64), pads=np.array([0, 1, 0, 0, 0, 0], np.int64),
                   heads_shape=np.array([0, T, heads, d], np.int64), merge_shape=np.array([0, T, dim], np.int64),
                   zero=np.array(0, np.int64), inv_sqrt_d=np.array(1 / np.sqrt(d), np.float32))
    N = helper.make_node
    nodes = [
        N("Conv", ["input", "pw"], ["patches"], kernel_shape=[patch, patch], strides=[patch, patch]),
        N("Reshape", ["patches", "flat_shape"], ["flat"]),
        N("Transpose", ["flat"], ["patch_tokens"], perm=[0, 2, 1]),
        N("Pad", ["patch_tokens", "pads"], ["padded"]),
        N("Add", ["padded", "pos"], ["tokens0"]),
        N("LayerNormalization", ["tokens0", "ln_g", "ln_b"], ["ln1"], axis=-1),
    ]
    for n in "qkv":
        nodes += [N("MatMul", ["ln1", f"w{n}"], [n]), N("Reshape", [n, "heads_shape"], [f"{n}_heads"])]
    nodes += [
        N("Transpose", ["q_heads"], ["q_t"], perm=[0, 2, 1, 3]),
        N("Transpose", ["k_heads"], ["k_t"], perm=[0, 2, 3, 1]),
        N("Transpose", ["v_heads"], ["v_t"], perm=[0, 2, 1, 3]),
        N("MatMul", ["q_t", "k_t"], ["qk"]),
        N("Mul", ["qk", "inv_sqrt_d"], ["scores"]),
        N("Softmax", ["scores"], ["attn"], axis=-1),
        N("MatMul", ["attn", "v_t"], ["ctx"]),
        N("Transpose", ["ctx"], ["ctx_heads"], perm=[0, 2, 1, 3]),
        N("Reshape", ["ctx_heads", "merge_shape"], ["ctx_merged"]),
        N("MatMul", ["ctx_merged", "wo"], ["attn_out"]),
        N("Add", ["tokens0", "attn_out"], ["resid"]),
        N("LayerNormalization", ["resid", "ln_g", "ln_b"], ["final_norm"], axis=-1),
        N("Gather", ["final_norm", "zero"], ["cls"], axis=1),
        N("Gemm", ["cls", "F", "c"], ["logits"], transB=1),
    ]
    m = _finish(nodes, _image_in(size), _logits_out(classes), inits, "vit_like")
    onnx.checker.check_model(m)
    return m


def tf2onnx_like_net(size=16, channels=32, classes=3, seed=0, head=True):
    """tf2onnx's shape: NHWC input -> Transpose to NCHW -> Conv 3x3/2 -> Relu ("act", N x 32 x 8 x 8, NCHW)
    -> Transpose to NHWC ("act_nhwc") -> ReduceMean over H, W -> MatMul + Add (head=True), or -> Flatten
    -> MatMul + Add (head=False: no pooling, so no linear head)."""
    rng = np.random.default_rng(seed)
    side = (size + 1) // 2
    feat = channels if head else channels * side * side
    inits = _inits(W=_t(rng, channels, 3, 3, 3), F=_t(rng, feat, classes, scale=1.0 if head else 0.05),
                   c=np.zeros(classes, np.float32))
    N = helper.make_node
    nodes = [
        N("Transpose", ["input"], ["x_nchw"], perm=[0, 3, 1, 2]),
        N("Conv", ["x_nchw", "W"], ["conv"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        N("Relu", ["conv"], ["act"]),
        N("Transpose", ["act"], ["act_nhwc"], perm=[0, 2, 3, 1]),
    ]
    if head:
        nodes.append(N("ReduceMean", ["act_nhwc"], ["pooled"], axes=[1, 2], keepdims=0))
    else:
        nodes.append(N("Flatten", ["act_nhwc"], ["pooled"], axis=1))
    nodes += [N("MatMul", ["pooled", "F"], ["mm"]), N("Add", ["mm", "c"], ["logits"])]
    m = _finish(nodes, _image_in(size, "NHWC"), _logits_out(classes), inits, "tf2onnx_like")
    onnx.checker.check_model(m)
    return m


def ambiguous_net(size=16, channels=8, classes=3, seed=0):
    """Conv 3x3/2 (N x 8 x 8 x 8) -> Reshape to (N, 8, 64) -> Reshape back ("mixed": its shape reads as
    NCHW or NHWC alike and the graph does not tell) -> Relu ("act") -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(seed)
    side = size // 2
    inits = _inits(W=_t(rng, channels, 3, 3, 3), F=_t(rng, classes, channels, scale=1.0), c=np.zeros(classes, np.float32),
                   s1=np.array([0, channels, side * side], np.int64), s2=np.array([0, channels, side, side], np.int64))
    N = helper.make_node
    nodes = [
        N("Conv", ["input", "W"], ["conv"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        N("Reshape", ["conv", "s1"], ["flat"]),
        N("Reshape", ["flat", "s2"], ["mixed"]),
        N("Relu", ["mixed"], ["act"]),
        N("GlobalAveragePool", ["act"], ["pool"]),
        N("Flatten", ["pool"], ["vec"], axis=1),
        N("Gemm", ["vec", "F", "c"], ["logits"], transB=1),
    ]
    m = _finish(nodes, _image_in(size), _logits_out(classes), inits, "ambiguous")
    onnx.checker.check_model(m)
    return m


def uint8_net(size=8, channels=4, classes=3, seed=0):
    """A uint8 NCHW input with the preprocessing inside: Cast -> Mul 1/255 -> conv_net's Conv/Relu/GAP/Gemm.
    Returns (ModelProto, forward(x uint8 (n, 3, size, size)) -> logits float64)."""
    rng = np.random.default_rng(seed)
    W, F = _t(rng, channels, 3, 3, 3, scale=2.0), _t(rng, classes, channels, scale=4.0)
    inits = _inits(W=W, F=F, c=np.zeros(classes, np.float32), s=np.array(1 / 255, np.float32))
    N = helper.make_node
    nodes = [
        N("Cast", ["input"], ["xf"], to=TensorProto.FLOAT),
        N("Mul", ["xf", "s"], ["x01"]),
        N("Conv", ["x01", "W"], ["conv"], pads=[1, 1, 1, 1]),
        N("Relu", ["conv"], ["act"]),
        N("GlobalAveragePool", ["act"], ["pool"]),
        N("Flatten", ["pool"], ["vec"], axis=1),
        N("Gemm", ["vec", "F", "c"], ["logits"], transB=1),
    ]
    m = _finish(nodes, _image_in(size, elem=TensorProto.UINT8), _logits_out(classes), inits, "uint8_input")
    onnx.checker.check_model(m)
    return m


EXPORTER_SHAPED = {  # name -> (builder, picture side, the grid of the maps a CAM reads)
    "convnext": (convnext_like_net, 16, (4, 4)),
    "vit": (vit_like_net, 16, (4, 4)),
    "tf2onnx": (tf2onnx_like_net, 16, (8, 8)),
    "tf2onnx_no_head": (lambda: tf2onnx_like_net(head=False), 16, (8, 8)),
    "ambiguous": (ambiguous_net, 16, (8, 8)),
}


def exporter_model(name):
    """An onnxai Model of EXPORTER_SHAPED[name] at its picture size (no resize)."""
    build, size, _ = EXPORTER_SHAPED[name]
    return onnxai.Model(build(), providers="cpu", preprocess={"resize": 0, "crop": size})


def grouped_head_net(seed: int = 0, spread: float = 0.15):
    """cam_net (12x12, 4 channels) with 6 classes whose class vectors form two obvious groups: classes 0-2
    point along (1, 1, 0, 0), classes 3-5 along (0, 0, 1, 1), each with a little noise and its own length.
    Returns (ModelProto, params) like cam_net, params["F"] the new (6, 4) weight."""
    m, p = cam_net(channels=4, classes=6, seed=seed)
    rng = np.random.default_rng(seed + 1)
    F = np.zeros((6, 4))
    F[:3, :2] = 1.0
    F[3:, 2:] = 1.0
    F = ((F + spread * rng.standard_normal(F.shape)) * rng.uniform(0.5, 2.0, (6, 1))).astype(np.float32)
    for init in m.graph.initializer:
        if init.name == "F":
            init.CopyFrom(numpy_helper.from_array(F, "F"))
    p["F"] = F
    return m, p


# --------------------------------------------------------------------------- heads from other exporters


def class_map_net(size: int = 8, classes: int = 4, pool: str = "gap", seed: int = 0):
    """SqueezeNet's head: Conv 3x3 -> Relu -> Conv 1x1 to one map per class -> Relu -> pooling ->
    Flatten, no linear layer. pool: "gap" (GlobalAveragePool), "avgpool" (AveragePool over the whole
    map, torch's AvgPool2d(size)), "reducemean" (over axes 2, 3). Returns (proto, params)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.5
    W1 = rng.standard_normal((classes, 6, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(W, "w"), numpy_helper.from_array(W1, "w1")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["a"], name="relu"),
             helper.make_node("Conv", ["a", "w1"], ["m"], name="classifier_conv"),
             helper.make_node("Relu", ["m"], ["maps"], name="relu_maps")]
    if pool == "gap":
        nodes.append(helper.make_node("GlobalAveragePool", ["maps"], ["pooled"], name="gap"))
    elif pool == "avgpool":
        nodes.append(helper.make_node("AveragePool", ["maps"], ["pooled"], kernel_shape=[size, size], name="avgpool"))
    else:
        inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
        nodes.append(helper.make_node("ReduceMean", ["maps", "axes"], ["pooled"], keepdims=1, name="mean"))
    nodes += [helper.make_node("Identity", ["pooled"], ["pooled_id"], name="identity"),
              helper.make_node("Flatten", ["pooled_id"], ["logits"], axis=1, name="flatten")]
    m = _finish(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
                [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])], inits, "class_maps")
    return m, {"W": W, "W1": W1}


def partial_avgpool_net(size: int = 8, classes: int = 3, seed: int = 0):
    """conv_net's pooling replaced by an AveragePool of half the map (a 2x2 grid stays): not a global pooling."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    F = rng.standard_normal((classes, 16)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["c"], ["p"], kernel_shape=[size // 2, size // 2],
                              strides=[size // 2, size // 2]),
             helper.make_node("Flatten", ["p"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1)]
    return _finish(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])],
                   [numpy_helper.from_array(W, "w"), numpy_helper.from_array(F, "fc")], "partial_pool")


def layernorm_head_net(size: int = 8, classes: int = 3, seed: int = 0):
    """GAP -> Flatten -> LayerNormalization -> Gemm (ConvNeXt's head): CAM is not defined after a LayerNorm."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    F = rng.standard_normal((classes, 4)).astype(np.float32)
    inits = [numpy_helper.from_array(W, "w"), numpy_helper.from_array(F, "fc"),
             numpy_helper.from_array(np.ones(4, np.float32), "g"), numpy_helper.from_array(np.zeros(4, np.float32), "b")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"], axis=1),
             helper.make_node("LayerNormalization", ["f", "g", "b"], ["n"], axis=-1),
             helper.make_node("Gemm", ["n", "fc"], ["logits"], transB=1)]
    return _finish(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes])], inits, "ln_head")


def with_input_dtype(proto, elem_type: int, scale: float = 1.0):
    """The same model fed through an input of another element type (uint8, float16, float64): the
    graph casts it to float and multiplies by ``scale`` first, as deployed uint8 exports do."""
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    g = m.graph
    old = g.input[0]
    shape = [d.dim_value or d.dim_param or None for d in old.type.tensor_type.shape.dim]
    name = old.name
    g.node.insert(0, helper.make_node("Cast", ["raw"], [name + "_f"], to=TensorProto.FLOAT, name="cast_in"))
    g.node.insert(1, helper.make_node("Mul", [name + "_f", "in_scale"], [name], name="scale_in"))
    g.initializer.append(numpy_helper.from_array(np.array(scale, np.float32), "in_scale"))
    del g.input[0]
    g.input.insert(0, helper.make_tensor_value_info("raw", elem_type, shape))
    onnx.checker.check_model(m)
    return m


def shape_reshape_net(size: int = 8, channels: int = 4, classes: int = 3, seed: int = 0):
    """A tail that reads the input's shape (as HF ViT and tf2onnx exports do): Conv 3x3 -> Relu ("act",
    N x 4 x 8 x 8) -> Reshape to (N, 4, H*W) with N, H and W read from Shape(input) -> ReduceMean over the
    cells -> Gemm. Nothing but the shape of the input bypasses "act". Returns (proto, forward)."""
    rng = np.random.default_rng(seed)
    W, F = _t(rng, channels, 3, 3, 3, scale=1.0), _t(rng, classes, channels, scale=1.0)
    inits = _inits(W=W, F=F, c=np.zeros(classes, np.float32), k=np.array([channels], np.int64),
                   i0=np.array([0], np.int64), i1=np.array([1], np.int64), i2=np.array([2], np.int64),
                   i3=np.array([3], np.int64), i4=np.array([4], np.int64))
    N = helper.make_node
    nodes = [
        N("Conv", ["input", "W"], ["conv"], pads=[1, 1, 1, 1]),
        N("Relu", ["conv"], ["act"]),
        N("Shape", ["input"], ["in_shape"]),
        N("Slice", ["in_shape", "i0", "i1"], ["n"]),
        N("Slice", ["in_shape", "i2", "i3"], ["h"]),
        N("Slice", ["in_shape", "i3", "i4"], ["w"]),
        N("Mul", ["h", "w"], ["hw"]),
        N("Concat", ["n", "k", "hw"], ["target_shape"], axis=0),
        N("Reshape", ["act", "target_shape"], ["cells"]),
        N("ReduceMean", ["cells"], ["pooled"], axes=[2], keepdims=0),
        N("Gemm", ["pooled", "F", "c"], ["logits"], transB=1),
    ]
    m = _finish(nodes, _image_in(size), _logits_out(classes), inits, "shape_reshape")
    onnx.checker.check_model(m)

    def forward(x):
        a = np.maximum(conv3x3(x.astype(np.float64), W.astype(np.float64)), 0)
        return a.mean(axis=(2, 3)) @ F.T.astype(np.float64)

    return m, forward


def dataset_files(folder, pictures: int = 6, size: int = 16):
    """Files for data-set runs (workers load the model from its file): a conv_net with its preprocessing
    in the metadata, a folder of pictures (sub/ holds some, one is corrupt), a 4-column table model and
    a table of rows plus a background CSV. Returns a dict of paths."""
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    m, _ = conv_net(size=size, channels=8, classes=3, softmax=True)
    pre = onnxai.Preprocess(resize=None, crop=size, mean=(0.5,) * 3, std=(0.25,) * 3)
    helper.set_model_props(m, {"onnxai.preprocess": pre.to_json()})
    save(m, folder / "conv.onnx")
    pics = folder / "pics"
    (pics / "sub").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(pictures):
        where = pics / "sub" if i % 3 == 2 else pics
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(where / f"p{i}.png")
    (pics / "broken.png").write_bytes(b"not a picture")
    table = mlp_model(4).proto
    save(table, folder / "mlp.onnx")
    X = rng.standard_normal((40, 4))
    X[7, 2] = np.nan
    header = "a,b,c,d\n"
    (folder / "rows.csv").write_text(header + "\n".join(",".join(f"{v:.6g}" for v in r) for r in X))
    (folder / "train.csv").write_text(header + "\n".join(",".join(f"{v:.6g}" for v in r)
                                                          for r in rng.standard_normal((60, 4))))
    return {"conv": folder / "conv.onnx", "pics": pics, "mlp": folder / "mlp.onnx", "rows": folder / "rows.csv",
            "train": folder / "train.csv", "X": X}


def nine_cell_picture():
    """(Model, 8x8x3 uint8 picture, (8, 8) segments of 9 cells): conv_net with 4 softmax classes, small
    enough for Kernel SHAP to score every coalition (2^9)."""
    m, _ = conv_net(size=8, classes=4, softmax=True, seed=3)
    pre = onnxai.Preprocess(resize=None, crop=8, mean=(0.5,) * 3, std=(0.25,) * 3)
    model = onnxai.load(m, preprocess=pre, providers="cpu")
    pic = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    segments = (np.arange(8)[:, None] // 3 * 3 + np.arange(8)[None, :] // 3).astype(np.int32)
    return model, pic, segments


def normalising_net(ops, layout="NCHW", size=8, after="input", **kw):
    """conv_net with ``ops`` (op_type, constant, constant_first) after the tensor ``after`` (the input, or
    "x_nchw": behind an NHWC net's Transpose)."""
    m, p = conv_net(size=size, layout=layout, softmax=True, **kw)
    g = m.graph
    first = next(n for n in g.node if after in n.input)
    tensor, nodes = after, []
    for i, (op, c, const_first) in enumerate(ops):
        g.initializer.append(numpy_helper.from_array(np.asarray(c, np.float32), f"norm_c{i}"))
        ins = [f"norm_c{i}", tensor] if const_first else [tensor, f"norm_c{i}"]
        nodes.append(helper.make_node(op, ins, [f"norm_{i}"], name=f"norm_{i}"))
        tensor = f"norm_{i}"
    first.input[list(first.input).index(after)] = tensor
    at = list(g.node).index(first)
    for n in reversed(nodes):
        g.node.insert(at, n)
    return m, p


def quantize(m, tmp_path, fmt="QDQ", per_channel=False, pixels=False):
    """``m`` saved as tmp_path/fp32.onnx and quantized by onnxruntime's quantize_static (uint8 activations,
    int8 weights) into tmp_path/quantized.onnx, calibrated on 8 random inputs (0..255 values when
    ``pixels``, else standard normal); returns that path."""
    q = pytest.importorskip("onnxruntime.quantization")
    fp32, out = tmp_path / "fp32.onnx", tmp_path / "quantized.onnx"
    onnx.save(m, str(fp32))
    shape = tuple(d.dim_value or 1 for d in m.graph.input[0].type.tensor_type.shape.dim)

    def draw(i):
        rng = np.random.default_rng(i)
        return (rng.uniform(0, 255, shape) if pixels else rng.standard_normal(shape)).astype(np.float32)

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": draw(i)} for i in range(8)])

        def get_next(self):
            return next(self.it, None)

    q.quantize_static(str(fp32), str(out), Reader(), quant_format=getattr(q.QuantFormat, fmt), per_channel=per_channel,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
    return out
