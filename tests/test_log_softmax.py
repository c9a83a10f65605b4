"""A classifier that ends in a LogSoftmax (torch models trained with NLLLoss export so): its outputs are
log-probabilities. Before, they were read as the logits, so probabilities were right (the softmax of a
log-softmax) but every map on logits used log p, which saturates with p, and Grad-CAM / CAM cut at the
wrong tensor. Now the LogSoftmax's input is the logits, as a Softmax's is."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import onnx_models
import onnxai
from onnx_models import conv_forward, np_softmax
from onnxai.cli import main


def _pair(size=8, seed=0):
    """(the net ending in Softmax, the same net ending in LogSoftmax, params)."""
    soft, p = onnx_models.conv_net(size=size, softmax=True, seed=seed)
    log = onnx.ModelProto()
    log.CopyFrom(soft)
    next(n for n in log.graph.node if n.op_type == "Softmax").op_type = "LogSoftmax"
    return soft, log, p


def _load(m, size=8):
    return onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=size))


def _picture(size=8, seed=4):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_scores_read_through_the_log_softmax():
    _, log, p = _pair()
    model = _load(log)
    assert model.log_probabilities and model.outputs_probabilities and model.logits_output == "logits"
    x = model.preprocess(_picture())
    logits = conv_forward(x, p)[1]
    np.testing.assert_allclose(model.run_batch(x, "logits"), logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.run_batch(x), np_softmax(logits), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.run_batch(x, "raw"), np.log(np_softmax(logits)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method, params", [
    ("occlusion", dict(window=4, stride=2, score="logits")),
    ("occlusion", dict(window=4, stride=2, score="probabilities")),
    ("lime", dict(num_samples=64, num_features=8, surrogate="ridge", score="logits", seed=1)),
    ("grad-cam", {}),
    ("cam", {}),
])
def test_maps_equal_those_of_the_softmax_net(method, params):
    soft, log, _ = _pair()
    image = _picture()
    want = onnxai.make_method(method, **params).explain(_load(soft), image, target=1)
    got = onnxai.make_method(method, **params).explain(_load(log), image, target=1)
    np.testing.assert_allclose(got.map, want.map, rtol=1e-4, atol=1e-6)


def test_inspect_says_log_probabilities(tmp_path):
    _, log, _ = _pair()
    path = onnx_models.save(log, tmp_path / "log.onnx")
    out = CliRunner().invoke(main, ["inspect", str(path), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["log_probabilities"] is True
    out = CliRunner().invoke(main, ["inspect", str(path)])
    assert "log-probabilities (a final LogSoftmax)" in out.output


def test_a_torch_export_ending_in_log_softmax(tmp_path):
    torch = pytest.importorskip("torch")
    import torch_models

    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 3))
    net = torch.nn.Sequential(body, torch.nn.LogSoftmax(dim=1)).eval()
    path = torch_models.export(net, tmp_path / "nll.onnx", torch.zeros(1, 3, 16, 16))
    model = onnxai.Model(path, providers="cpu", preprocess=onnxai.Preprocess(resize=None, crop=16))
    assert model.log_probabilities
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        logits = body(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.scores(x, "logits"), logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.scores(x), np_softmax(logits), rtol=1e-4, atol=1e-6)
