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
from onnx_models import conv_forward


def _qdq(tmp_path):
    q = pytest.importorskip("onnxruntime.quantization")
    m, p = onnx_models.conv_net(size=16, softmax=True, seed=5)
    fp32, qdq = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"
    onnx.save(m, str(fp32))

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": np.random.default_rng(i).standard_normal((1, 3, 16, 16)).astype(np.float32)}
                            for i in range(8)])

        def get_next(self):
            return next(self.it, None)

    q.quantize_static(str(fp32), str(qdq), Reader(), quant_format=q.QuantFormat.QDQ,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
    return qdq, p


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
