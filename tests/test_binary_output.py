"""Classifiers with one score column (a Keras Dense(1, sigmoid) or a PyTorch BCE-with-logits head, exported):
read as two classes, class 1 the column's and class 0 its complement. Before, softmax over the one column
gave probability 1.000 to "class 0" on every input and flat maps. And a graph that folds the batch axis
into the classes is refused instead of mixing the scores of different inputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_models
import onnxai
from onnx_models import conv_forward


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _one_column(sigmoid: bool = False, seed: int = 3):
    m, p = onnx_models.conv_net(size=8, channels=4, classes=1, seed=seed)
    if sigmoid:
        m.graph.node.append(helper.make_node("Sigmoid", ["logits"], ["prob"], name="sigmoid"))
        del m.graph.output[:]
        m.graph.output.append(helper.make_tensor_value_info("prob", TensorProto.FLOAT, [None, 1]))
        onnx.checker.check_model(m)
    return m, p


def _two_columns(m, p):
    """The same network with the head (-w/2, w/2), (-b/2, b/2): the two-class model the binary reading means."""
    two = onnx.ModelProto()
    two.CopyFrom(m)
    F, c = p["F"], p["c"]
    for init in two.graph.initializer:
        if init.name == "fc_w":
            init.CopyFrom(numpy_helper.from_array(np.concatenate([-F / 2, F / 2]), "fc_w"))
        if init.name == "fc_b":
            init.CopyFrom(numpy_helper.from_array(np.r_[-c / 2, c / 2].astype(np.float32), "fc_b"))
    two.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 2
    return onnxai.Model(two, providers="cpu", preprocess=_pre())


def _pre():
    return onnxai.Preprocess(resize=None, crop=8, mean=(0.5,) * 3, std=(0.25,) * 3)


@pytest.mark.parametrize("sigmoid", [False, True])
def test_one_column_reads_as_two_classes(sigmoid, capsys):
    m, p = _one_column(sigmoid)
    model = onnxai.Model(m, providers="cpu", preprocess=_pre())
    said = capsys.readouterr().err
    assert model.num_classes == 2 and model.binary == ("probability" if sigmoid else "logit")
    assert ("ends in a Sigmoid" if sigmoid else "no Sigmoid ends it") in said
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    z = conv_forward(x, p)[1][:, 0].astype(np.float64)
    probs = model.scores(x)
    np.testing.assert_allclose(probs[:, 1], _sigmoid(z), atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(model.scores(x, "logits"), np.stack([-z / 2, z / 2], axis=1), atol=1e-4)
    pic = onnx_models.cam_picture(size=8)
    top = model.predict(pic, top=2)[0]
    assert {q.index for q in top} == {0, 1} and abs(top[0].probability + top[1].probability - 1) < 1e-5


@pytest.mark.parametrize("sigmoid", [False, True])
def test_maps_equal_those_of_the_two_class_model(sigmoid):
    m, p = _one_column(sigmoid)
    one = onnxai.Model(m, providers="cpu", preprocess=_pre())
    two = _two_columns(_one_column(False)[0], p)
    pic = onnx_models.cam_picture(size=8)
    for target in (0, 1):
        for method, kw, tol in [("occlusion", dict(window=2, stride=2, score="probabilities"), 1e-5),
                                ("occlusion", dict(window=2, stride=2, score="logits"), 1e-4),
                                ("grad-cam", {}, 1e-5), ("cam", {}, 1e-5)]:
            a = onnxai.explain(one, pic, method=method, target=target, **kw)
            b = onnxai.explain(two, pic, method=method, target=target, **kw)
            np.testing.assert_allclose(a.map, b.map, atol=tol, err_msg=f"{method} {kw} target {target}")
            assert a.label == f"class {target}"
    assert onnxai.explain(one, pic, method="grad-cam").extras["gradient"] == "exact"  # the head (behind the Sigmoid)


def test_a_graph_that_folds_the_batch_into_the_classes_is_refused():
    m, p = onnx_models.conv_net(size=8, channels=4, classes=3, seed=1)
    m.graph.node.append(helper.make_node("Flatten", ["logits"], ["folded"], axis=0, name="fold"))
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("folded", TensorProto.FLOAT, [1, None]))
    model = onnxai.Model(m, providers="cpu", preprocess=_pre())  # one row: (1, 3), nothing to see yet
    pic = onnx_models.cam_picture(size=8)
    assert len(model.predict(pic)[0]) == 3
    # the load's batch check (a batch of 2 against two single runs) sends it one input at a time: right scores
    assert model.batch_size == 1
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(model.scores(x, "logits"), conv_forward(x, p)[1], rtol=1e-4, atol=1e-5)
    model.batch_size, model.fixed_batch = 4, None  # forced back to batches, the fold is refused at the first
    with pytest.raises(onnxai.OutputError, match=r"returned 1 row\(s\) of scores .* for 4 inputs: its graph folds "
                                                  "the batch axis"):
        model.scores(np.zeros((4, 3, 8, 8), np.float32))
    with pytest.raises(onnxai.OutputError, match="folds the batch axis"):
        onnxai.explain(model, pic, method="occlusion", window=2, stride=2)
    m.graph.node.append(helper.make_node("Softmax", ["folded"], ["probs"], axis=1, name="softmax"))
    m.graph.output[0].name = "probs"  # a Softmax after the fold: logits are read before it, checked the same
    model = onnxai.Model(m, providers="cpu", preprocess=_pre())
    model.batch_size, model.fixed_batch = 4, None
    assert model.logits_output == "folded"
    with pytest.raises(onnxai.OutputError, match="'folded', shape \\(1, 12\\)\\) for 4 inputs: its graph folds"):
        model.scores(np.zeros((4, 3, 8, 8), np.float32), "logits")


def test_a_one_column_table_model_raw_stays_one_column():
    # a regressor, or a binary logit: score="raw" explains the column as it is; the classes read it as two
    rng = np.random.default_rng(4)
    w = rng.standard_normal(4)
    model = onnx_models.linear_model(w, 0.3)
    X, bg = rng.standard_normal((2, 4)), rng.standard_normal((20, 4))
    raw = onnxai.KernelSHAP(background=bg, summarise="all", score="raw").explain(model, X)
    assert raw.values.shape == (2, 4, 1)
    np.testing.assert_allclose(raw.values[:, :, 0], w * (X - bg.mean(axis=0)), atol=1e-4)
    probs = onnxai.KernelSHAP(background=bg, summarise="all").explain(model, X)
    assert probs.values.shape == (2, 4, 2)
    np.testing.assert_allclose(probs.values[:, :, 1], -probs.values[:, :, 0], atol=1e-6)  # p0 = 1 - p1
    with pytest.raises(onnxai.InputError, match="class 1: the scores explained have 1 column"):
        onnxai.KernelSHAP(background=bg, summarise="all", score="raw").explain(model, X, target=1)


def test_a_final_sigmoid_over_many_columns_is_multi_label():
    # independent probabilities (e.g. a chest X-ray model's findings): softmaxing them gave other numbers
    m, p = onnx_models.conv_net(size=8, channels=4, classes=3, seed=5)
    m.graph.node.append(helper.make_node("Sigmoid", ["logits"], ["probs"], name="sigmoid"))
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 3]))
    model = onnxai.Model(m, providers="cpu", preprocess=_pre())
    assert model.binary is None and model.outputs_probabilities and model.logits_output == "logits"
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    z = conv_forward(x, p)[1].astype(np.float64)
    np.testing.assert_allclose(model.scores(x), _sigmoid(z), atol=1e-5)
    np.testing.assert_allclose(model.scores(x, "logits"), z, atol=1e-4)
    pic = onnx_models.cam_picture(size=8)
    cam = onnxai.explain(model, pic, method="cam", target=2)  # the head is found behind the Sigmoid
    plain = onnxai.explain(onnxai.Model(onnx_models.conv_net(size=8, channels=4, classes=3, seed=5)[0],
                                        providers="cpu", preprocess=_pre()), pic, method="cam", target=2)
    np.testing.assert_allclose(cam.map, plain.map, atol=1e-6)
    assert "final Sigmoid" in onnxai.explain(model, pic, method="grad-cam", target=2).extras["score"]


def test_logits_with_more_axes_before_a_final_reshape_are_flattened():
    # (N, 1, K) logits, a Softmax on them, then a Reshape to (N, K): the logits read before the Softmax
    m, p = onnx_models.conv_net(size=8, channels=4, classes=3, seed=1)
    m.graph.initializer.extend([numpy_helper.from_array(np.array([0, 1, 3], np.int64), "s3"),
                                numpy_helper.from_array(np.array([0, 3], np.int64), "s2")])
    m.graph.node.extend([helper.make_node("Reshape", ["logits", "s3"], ["l3"]),
                         helper.make_node("Softmax", ["l3"], ["p3"], axis=2),
                         helper.make_node("Reshape", ["p3", "s2"], ["probs"])])
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 3]))
    model = onnxai.Model(m, providers="cpu", preprocess=_pre())
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    assert model.logits_output == "l3"
    np.testing.assert_allclose(model.scores(x, "logits"), conv_forward(x, p)[1], atol=1e-4)


def test_a_final_topk_is_read_through_to_every_class(monkeypatch, capfd):
    """A graph that ends in TopK (serving exports: the k best probabilities and their indices): its values
    output is (batch, k) floats in rank order, which was taken for k classes. The scores it ranks are read."""
    from onnxai import _log

    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    m, p = onnx_models.conv_net(size=8, classes=5, softmax=True, seed=2)
    m.graph.initializer.append(numpy_helper.from_array(np.array([3], np.int64), "k"))
    m.graph.node.append(helper.make_node("TopK", ["probs", "k"], ["top_values", "top_indices"], axis=1, name="topk"))
    del m.graph.output[:]
    m.graph.output.extend([helper.make_tensor_value_info("top_values", TensorProto.FLOAT, [None, 3]),
                           helper.make_tensor_value_info("top_indices", TensorProto.INT64, [None, 3])])
    model = onnxai.Model(m, providers="cpu", preprocess=_pre())
    assert "is a TopK of 'probs'" in capfd.readouterr().err
    assert model.output == "probs" and model.num_classes == 5 and model.outputs_probabilities
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    logits = conv_forward(x, p)[1]
    np.testing.assert_allclose(model.scores(x, "logits"), logits, rtol=1e-4, atol=1e-5)
