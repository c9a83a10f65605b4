"""onnxai.graph: layer listing, exposing tensors, the batch rewrite, finding the linear head and
cutting tails, checked by running the results in onnxruntime against numpy references."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
import onnxruntime as ort
import pytest

import onnx_models
from onnxai import graph, graph_ends, heads
from onnxai.errors import LayerError, ModelError


def _run(m, x, names=None):
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {s.get_inputs()[0].name: x}
    return s.run(names, feed)


def _x(n, size=8, layout="NCHW", seed=1):
    shape = (n, size, size, 3) if layout == "NHWC" else (n, 3, size, size)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------------- read_model


def test_read_model_errors(tmp_path):
    with pytest.raises(ModelError, match="model file not found: .*nope.onnx"):
        graph.read_model(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="is a folder; give the path of a .onnx file"):
        graph.read_model(tmp_path)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match=r"is empty \(0 bytes\)"):
        graph.read_model(tmp_path / "empty.onnx")
    (tmp_path / "junk.onnx").write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(ModelError, match="junk.onnx (is not a readable ONNX model|parsed as protobuf but holds no ONNX graph)"):
        graph.read_model(tmp_path / "junk.onnx")


# ----------------------------------------------------------------------------- list_layers / expose


def test_list_layers_shapes_and_spatial():
    m, _ = onnx_models.conv_net(size=8, channels=4, classes=5, batch=1)
    layers = {l.name: l for l in graph.list_layers(m)}
    assert list(layers) == ["conv", "act", "pool", "flat", "logits"]
    assert layers["act"].op_type == "Relu" and layers["act"].node == "relu"
    assert layers["conv"].shape == (1, 4, 8, 8) and layers["conv"].spatial
    assert layers["act"].shape == (1, 4, 8, 8) and layers["act"].spatial
    assert layers["pool"].shape == (1, 4, 1, 1) and not layers["pool"].spatial
    assert layers["flat"].shape == (1, 4) and not layers["flat"].spatial
    assert layers["logits"].shape == (1, 5) and not layers["logits"].spatial
    assert layers["act"].shape_text() == "1x4x8x8"

    dyn = {l.name: l for l in graph.list_layers(onnx_models.conv_net(batch=None)[0])}
    assert dyn["act"].shape[1:] == (4, 8, 8) and dyn["act"].spatial
    assert dyn["act"].shape_text() == "?x4x8x8"


def test_list_layers_without_inferred_shapes():
    m, _ = onnx_models.contrib_gelu_net()
    layers = {l.name: l for l in graph.list_layers(m)}
    assert layers["conv"].shape[1:] == (4, 8, 8) and layers["conv"].spatial
    # everything after the com.microsoft node is unknown to ONNX shape inference
    assert layers["act"].shape is None and not layers["act"].spatial
    assert layers["act"].shape_text() == "?"


def test_expose_adds_outputs_after_the_existing_ones_and_runs():
    m, p = onnx_models.conv_net()
    patched = graph.expose(m, ["act", "pool"])
    assert [o.name for o in patched.graph.output] == ["logits", "act", "pool"]
    assert [o.name for o in m.graph.output] == ["logits"]  # the input model is not modified
    act_vi = patched.graph.output[1]
    assert act_vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = act_vi.type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [4, 8, 8] and not dims[0].HasField("dim_value")
    x = _x(3)
    logits, act, pool = _run(patched, x)
    ref_act, ref_logits = onnx_models.conv_forward(x, p)
    np.testing.assert_allclose(act, ref_act, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(pool[:, :, 0, 0], ref_act.mean(axis=(2, 3)), atol=1e-5)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=1e-5)
    # exposing an existing output or the same name twice adds nothing
    again = graph.expose(patched, ["logits", "act"])
    assert [o.name for o in again.graph.output] == ["logits", "act", "pool"]


def test_expose_unknown_name_lists_close_names():
    m, _ = onnx_models.conv_net()
    with pytest.raises(LayerError) as e:
        graph.expose(m, ["actt"])
    msg = str(e.value)
    assert msg.startswith("no tensor named 'actt' in the model; close names: act")
    assert "`onnxai inspect MODEL --layers`" in msg
    with pytest.raises(LayerError) as e:
        graph.expose(m, "zzzzzzzz")
    assert "close names" not in str(e.value)


def test_exposed_bytes_parse_to_the_exposed_model_and_run():
    """exposed_bytes appends a ModelProto holding only the new outputs to the model's bytes; parsed,
    that must be expose()'s model exactly (protobuf merges the repeated graph outputs), and it runs."""
    m, p = onnx_models.conv_net()
    raw = m.SerializeToString()
    for names in (["act"], ["act", "pool"], ["act", "act"], [m.graph.output[0].name]):
        data = graph.exposed_bytes(m, raw, names)
        assert onnx.ModelProto.FromString(data) == graph.expose(m, names)
    assert graph.exposed_bytes(m, raw, [m.graph.output[0].name]) is raw  # nothing new: the same bytes
    x = _x(2)
    s = ort.InferenceSession(graph.exposed_bytes(m, raw, ["act"]), providers=["CPUExecutionProvider"])
    logits, act = s.run(None, {s.get_inputs()[0].name: x})
    ref_act, ref_logits = onnx_models.conv_forward(x, p)[:2]
    np.testing.assert_allclose(act, ref_act, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=1e-4)
    with pytest.raises(LayerError, match="no tensor named 'nope'"):
        graph.exposed_bytes(m, raw, ["nope"])


def test_expose_when_shape_inference_gives_nothing():
    m, p = onnx_models.contrib_gelu_net()
    infos = graph.tensor_infos(graph.infer(m))
    assert infos.get("act", (None, 0))[0] is None  # the no-shape path is the one exercised
    patched = graph.expose(m, "act")
    vi = patched.graph.output[-1]
    assert vi.name == "act" and vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert not vi.type.tensor_type.HasField("shape")
    x = _x(2)
    logits, act = _run(patched, x)
    ref_act, ref_logits = onnx_models.conv_forward_gelu(x, p)
    np.testing.assert_allclose(act, ref_act, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=1e-4)


def test_infer_never_raises():
    m, _ = onnx_models.conv_net()
    broken = onnx.ModelProto.FromString(m.SerializeToString())
    broken.graph.node[0].op_type = "NoSuchOp"  # inference cannot know this op
    out = graph.infer(broken)
    assert isinstance(out, onnx.ModelProto)


def _full_inference(m):
    from onnx import shape_inference
    return shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)


def test_infer_without_weights_gives_the_shapes_full_inference_gives():
    """infer() runs on a copy whose large initializers are graph inputs: the shapes must be the ones that
    inference of the whole model gives, with shape-deciding small constants (a Reshape's target) kept."""
    from pathlib import Path

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((1000, 50)).astype(np.float32), "big_w")  # > _KEEP_VALUES
    shape = numpy_helper.from_array(np.array([-1, 10, 5], np.int64), "target_shape")
    nodes = [helper.make_node("MatMul", ["x", "big_w"], ["mm"]),
             helper.make_node("Transpose", ["mm"], ["t"], perm=[1, 0]),
             helper.make_node("Reshape", ["t", "target_shape"], ["r"]),
             helper.make_node("ReduceMean", ["r"], ["y"], axes=[2], keepdims=0)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4, 1000])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], initializer=[w, shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    old = onnx.ModelProto.FromString(m.SerializeToString())  # an old exporter: initializers listed as inputs
    old.graph.input.append(helper.make_tensor_value_info("big_w", onnx.TensorProto.FLOAT, [1000, 50]))
    shipped = onnx.load(str(Path(__file__).resolve().parents[1] / "models" / "efficientnet_lite0.onnx"))
    for model in (m, old, shipped):
        light = graph.infer(model)
        assert graph.tensor_infos(light) == graph.tensor_infos(_full_inference(model))
        assert [n.output for n in light.graph.node] == [n.output for n in model.graph.node]
        assert all(not i.raw_data and not i.float_data for i in light.graph.initializer if np.prod(i.dims) > 4096)
    infos = graph.tensor_infos(graph.infer(m))
    assert infos["r"][0] == [4, 10, 5] and infos["y"][0] == [4, 10]  # the Reshape's target was read
    assert infos["big_w"] == ([1000, 50], onnx.TensorProto.FLOAT)      # the weight's entry as before
    assert len(m.graph.initializer[0].raw_data) == 1000 * 50 * 4      # the model itself is untouched


# ----------------------------------------------------------------------------- make_batch_dynamic


def test_make_batch_dynamic_rewrites_inputs_outputs_and_reshape_constants():
    m, p = onnx_models.reshape_head_net((1, 4))  # a Reshape to (1, 4): fixable, becomes (-1, 4)
    new, reason = graph_ends.make_batch_dynamic(m)
    assert reason is None
    for vi in (new.graph.input[0], new.graph.output[0]):
        d0 = vi.type.tensor_type.shape.dim[0]
        assert d0.dim_param == "batch" and not d0.HasField("dim_value")
    shape = next(i for i in new.graph.initializer if i.name == "flat_shape")
    assert onnx.numpy_helper.to_array(shape).tolist() == [-1, 4]
    x = _x(6)
    (logits,) = _run(new, x)
    np.testing.assert_allclose(logits, onnx_models.conv_forward(x, p)[1], atol=1e-4, rtol=1e-5)
    # untouched original
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_make_batch_dynamic_refuses_reshape_with_batch_and_minus_one():
    m, _ = onnx_models.reshape_head_net((1, -1))
    new, reason = graph_ends.make_batch_dynamic(m)
    assert new is m
    assert reason == "Reshape node 'flatten' hard-codes the batch size 1 next to a -1 dimension"


# ----------------------------------------------------------------------------- find_linear_head


@pytest.mark.parametrize("build", ["gemm", "gemm_transb0", "matmul", "gemm_softmax", "matmul_softmax_nhwc"])
def test_find_linear_head(build):
    if build == "gemm_transb0":
        m, p = onnx_models.gemm_transb0_net()
    elif build == "matmul_softmax_nhwc":
        m, p = onnx_models.conv_net(head="matmul", softmax=True, layout="NHWC")
    else:
        m, p = onnx_models.conv_net(head=build.split("_")[0], softmax=build.endswith("softmax"))
    head = heads.find_linear_head(m)
    assert head.weight.shape == (5, 4) and head.weight.dtype == np.float32
    np.testing.assert_array_equal(head.weight, p["F"])
    np.testing.assert_array_equal(head.bias, p["c"])
    assert head.features == "act" and head.pooled == "pool" and head.channel_axis == 1
    assert head.logits == "logits"
    # the head reproduces the logits from the features
    x = _x(2, layout=p["layout"])
    act, logits = onnx_models.conv_forward(x, p)
    np.testing.assert_allclose(act.mean(axis=(2, 3)) @ head.weight.T + head.bias, logits, atol=1e-5)
    assert head.nodes[0] == "GlobalAveragePool gap"
    assert head.nodes[-1] in ("Gemm fc", "Add fc_add")


def test_find_linear_head_gemm_alpha_beta():
    m, p = onnx_models.conv_net()
    for n in m.graph.node:
        if n.op_type == "Gemm":
            n.attribute.extend([onnx.helper.make_attribute("alpha", 2.0), onnx.helper.make_attribute("beta", 0.5)])
    head = heads.find_linear_head(m)
    np.testing.assert_allclose(head.weight, 2 * p["F"], rtol=1e-6)
    np.testing.assert_allclose(head.bias, 0.5 * p["c"], rtol=1e-6)
    x = _x(2)
    act, _ = onnx_models.conv_forward(x, p)
    (logits,) = _run(m, x)
    np.testing.assert_allclose(act.mean(axis=(2, 3)) @ head.weight.T + head.bias, logits, atol=1e-4)


def test_find_linear_head_channels_last_reduce_mean():
    m, p = onnx_models.nhwc_reduce_net()
    head = heads.find_linear_head(m)
    assert head.features == "act" and head.channel_axis == 3 and head.pooled == "pool"
    np.testing.assert_array_equal(head.weight, p["F"])
    np.testing.assert_array_equal(head.bias, p["c"])  # bias found as the Add's first input


def test_find_linear_head_refuses_a_model_without_pooling():
    m, _ = onnx_models.no_pool_net()
    with pytest.raises(LayerError) as e:
        heads.find_linear_head(m)
    assert str(e.value) == (
        "the model has no linear head on global average pooling (needed by CAM): walking back from the "
        "output found Relu 'relu' feeds the linear layer, not a global average pooling. "
        "Use Grad-CAM or Score-CAM, which work on any layer"
    )
    tab, _ = onnx_models.tabular_net()
    with pytest.raises(LayerError, match="the linear layer reads a graph input directly"):
        heads.find_linear_head(tab)


# ----------------------------------------------------------------------------- extract_tail


@pytest.mark.parametrize("softmax", [False, True])
def test_extract_tail_reproduces_logits(softmax):
    m, p = onnx_models.conv_net(softmax=softmax, layout="NHWC")
    x = _x(4, layout="NHWC")
    ref_act, ref_logits = onnx_models.conv_forward(x, p)
    act = _run(graph.expose(m, "act"), x)[1]
    tail = graph.extract_tail(m, "act", ["logits"])
    assert [i.name for i in tail.graph.input] == ["act"]
    assert [o.name for o in tail.graph.output] == ["logits"]
    assert {n.op_type for n in tail.graph.node} == {"GlobalAveragePool", "Flatten", "Gemm"}
    assert {i.name for i in tail.graph.initializer} == {"fc_w", "fc_b"}
    (logits,) = _run(tail, act)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=1e-5)
    # default outputs: the graph's
    full = graph.extract_tail(m, "act")
    (out,) = _run(full, act)
    np.testing.assert_allclose(out, onnx_models.np_softmax(ref_logits) if softmax else ref_logits, atol=1e-5)


def test_extract_tail_on_skip_connection():
    m, p = onnx_models.skip_net()
    with pytest.raises(LayerError) as e:
        graph.extract_tail(m, "z")
    assert str(e.value).startswith("the output does not depend on 'z' alone: it also reads ['input']")
    # at the block boundary the cut works, and reproduces the model
    x = _x(2)
    logits, s = _run(graph.expose(m, "s"), x)
    (tail_logits,) = _run(graph.extract_tail(m, "s"), s)
    np.testing.assert_allclose(tail_logits, logits, atol=1e-5)
    with pytest.raises(LayerError, match="no tensor named 'q'"):
        graph.extract_tail(m, "q")


@pytest.mark.parametrize("batch", [1, 3])
def test_extract_tail_folds_shape_of_input(batch):
    """A Reshape whose target shape comes from Shape(input) (batch, H * W): the tail from "act" reads only
    the input's shape, which is folded (constants + the batch size of "act"), and reproduces the model."""
    m, forward = onnx_models.shape_reshape_net()
    x = _x(batch)
    logits, act = _run(graph.expose(m, "act"), x)
    np.testing.assert_allclose(logits, forward(x), atol=1e-4)
    tail = graph.extract_tail(m, "act", ["logits"])
    onnx.checker.check_model(tail)
    assert [i.name for i in tail.graph.input] == ["act"]
    assert all(n.input[0] != "input" for n in tail.graph.node)  # the input's Shape node is gone
    (out,) = _run(tail, act)
    np.testing.assert_allclose(out, logits, atol=1e-5)
    # a concrete size for an input whose size the graph leaves open
    dyn = onnx.ModelProto()
    dyn.CopyFrom(m)
    for d in dyn.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.Clear()
        d.dim_param = "side"
    with pytest.raises(LayerError, match="reads the shape of 'input'"):
        graph.extract_tail(dyn, "act", ["logits"])
    (out,) = _run(graph.extract_tail(dyn, "act", ["logits"], {"input": (1, 3, 8, 8)}), act)
    np.testing.assert_allclose(out, logits, atol=1e-5)


def test_extract_tail_keeps_refusing_value_bypass_with_shape_reads():
    """A value bypass is still refused when the graph also reads the input's shape."""
    m, _ = onnx_models.shape_reshape_net()
    g = m.graph
    g.node.insert(2, onnx.helper.make_node("ReduceMean", ["input"], ["in_mean"], axes=[1, 2, 3], keepdims=0))
    last = g.node[-1]
    last.output[0] = "logits_raw"
    g.node.append(onnx.helper.make_node("Add", ["logits_raw", "in_mean_col"], ["logits"]))
    g.node.insert(3, onnx.helper.make_node("Unsqueeze", ["in_mean", "i1"], ["in_mean_col"]))
    onnx.checker.check_model(m)
    with pytest.raises(LayerError, match=r"it also reads \['input'\]"):
        graph.extract_tail(m, "act", ["logits"])
