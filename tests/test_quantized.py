"""A model quantized by onnxruntime (QDQ format: QuantizeLinear / DequantizeLinear around each op, the
final Softmax included): onnxai reads the Softmax behind the last pair. Before, it found no Softmax, so
whether the outputs were probabilities hung on the probe's rows summing to 1 within 1e-4 (quantized
probabilities sum to 1 only within about K / 512), and the logits were the log-odds of probabilities
quantized to 1/256 steps instead of the Softmax's input. On this test's model the rows sum to 0.992-1.0:
the old rule read the probe's row as probabilities or not by chance, and softmaxed them when not."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnx_models
import onnxai
from onnx_models import conv_forward, quantize


def _qdq(tmp_path, per_channel=False):
    m, p = onnx_models.conv_net(size=16, softmax=True, seed=5)
    return quantize(m, tmp_path, per_channel=per_channel), p


def test_the_softmax_behind_onnxruntimes_qdq_pair_is_found(tmp_path):
    path, p = _qdq(tmp_path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops[-3:] == ["Softmax", "QuantizeLinear", "DequantizeLinear"]  # what the quantizer writes
    model = onnxai.Model(path, providers="cpu", preprocess=onnxai.Preprocess(resize=None, crop=16))
    assert model.outputs_probabilities and model.logits_output != model.output
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    logits = conv_forward(x, p)[1]
    got = model.scores(x, "logits")
    # the dequantized logits: the float model's within 8-bit steps (0.05 of a 3.3 range measured)
    assert np.abs(got - logits).max() < 0.15, (got, logits)
    np.testing.assert_allclose(model.scores(x), model.scores(x, "raw"))  # probabilities: taken as they are


@pytest.mark.parametrize("per_channel", [False, True])
def test_cam_reads_the_quantized_head(tmp_path, per_channel):
    """The linear head behind Q/DQ pairs, its int8 weights dequantized: CAM and NBDT run, and CAM's map
    is the float model's (before, both refused: "found DequantizeLinear where a Gemm or MatMul was").
    Weights quantized per tensor or per output channel (DequantizeLinear's axis)."""
    from onnxai.heads import find_linear_head

    path, p = _qdq(tmp_path, per_channel)
    model = onnxai.Model(path, providers="cpu", preprocess=onnxai.Preprocess(resize=None, crop=16))
    head = find_linear_head(model.proto, model.output)
    assert np.abs(head.weight - p["F"]).max() < 0.02 and np.abs(head.bias - p["c"]).max() < 1e-3
    fp32 = onnxai.Model(tmp_path / "fp32.onnx", providers="cpu", preprocess=onnxai.Preprocess(resize=None, crop=16))
    image = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    got, want = (onnxai.CAM().explain(m, image, target=1).map for m in (model, fp32))
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99
    onnxai.explain(model, image, method="nbdt")


def test_the_normalisation_of_a_quantized_model_is_read(tmp_path):
    """onnxruntime's QDQ quantization wraps the input's Mul / Sub / Div in QuantizeLinear / DequantizeLinear
    pairs: the graph's own normalisation is still read through them."""
    m, _ = onnx_models.normalising_net([("Mul", 1 / 255, False), ("Sub", np.array([0.5, 0.5, 0.5]).reshape(1, 3, 1, 1), False),
                                        ("Div", np.array([0.25, 0.25, 0.25]).reshape(1, 3, 1, 1), False)], size=16)
    qdq = quantize(m, tmp_path, pixels=True)
    first = next(n for n in onnx.load(str(qdq)).graph.node if "input" in n.input)
    assert first.op_type == "QuantizeLinear", first.op_type  # the input itself is quantized first
    model = onnxai.Model(qdq, providers="cpu", preprocess=dict(resize=0, crop=16))
    assert model.preprocess_source.startswith("read from the graph"), model.preprocess_source
    assert model.preprocess.scale == 1.0


def test_a_qoperator_models_quantized_softmax_gives_probabilities(tmp_path):
    """QOperator format (QLinearConv ... QLinearSoftmax, then a DequantizeLinear): the outputs are read as
    probabilities from the graph, not from whether the probe's row happens to sum to 1 within 1e-4."""
    from onnxai import graph_ends

    m, _ = onnx_models.conv_net(size=16, classes=40, softmax=True, seed=5)
    qop = quantize(m, tmp_path, fmt="QOperator")
    proto = onnx.load(str(qop))
    assert "QLinearSoftmax" in [n.op_type for n in proto.graph.node]
    assert graph_ends.ends_in_quantized_softmax(proto, proto.graph.output[0].name)
    model = onnxai.Model(qop, providers="cpu", preprocess=onnxai.Preprocess(resize=None, crop=16))
    assert model.outputs_probabilities
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    raw = model.scores(x, "raw")
    assert np.abs(raw.sum(axis=1) - 1).max() > 1e-4  # the old rule (rows summing to 1) would call them logits
    np.testing.assert_allclose(model.scores(x), raw)  # taken as they are, never softmaxed
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with pytest.raises(onnxai.LayerError, match=r"holds tensor\(uint8\) values \(a quantized model's activation\)"):
        onnxai.explain(model, image, method="grad-cam")  # before: onnxruntime's "Unexpected input data type"
    assert np.isfinite(onnxai.explain(model, image, method="occlusion").map).all()
