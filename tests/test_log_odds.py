"""A model that outputs only probabilities (scikit-learn through skl2onnx, a softmax the graph computes
and then changes, so there is no node to cut before): its "logits" are each class's log-odds against the
rest. Before, they were log p, which saturates with p: the saturation switch to logits changed nothing."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnx_models
import onnxai
from onnxai.classes import log_odds
from onnx_models import conv_forward, np_softmax


def margin(z):
    """z_c - logsumexp_{j != c} z_j, in float64: the log-odds of a softmax's class c."""
    z = np.asarray(z, np.float64)
    out = np.empty_like(z)
    for c in range(z.shape[1]):
        rest = np.delete(z, c, axis=1)
        m = rest.max(axis=1, keepdims=True)
        out[:, c] = z[:, c] - (m[:, 0] + np.log(np.exp(rest - m).sum(axis=1)))
    return out


def test_log_odds_of_a_softmax_is_the_margin_even_where_float32_rounds_p_to_1():
    z = np.array([[0.0, 1.0, -2.0], [30.0, 5.0, 4.0], [-3.0, 12.0, 11.5]])
    p = np_softmax(z).astype(np.float32)
    assert p[1, 0] == 1.0  # saturated: 1 - p is 0 in float32, log p is 0
    np.testing.assert_allclose(log_odds(p), margin(z), rtol=1e-4, atol=1e-4)
    two = np.array([[0.2, 0.8], [0.5, 0.5]], np.float32)
    np.testing.assert_allclose(log_odds(two)[:, 1], np.log(two[:, 1] / two[:, 0]), rtol=1e-6)
    assert np.all(np.isfinite(log_odds(np.array([[1.0, 0.0, 0.0]], np.float32))))


def test_sklearn_logistic_regression_logits_are_its_decision_function():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4)).astype(np.float32)
    y = (X[:, 0] - 2 * X[:, 1] + 0.3 * rng.standard_normal(200) > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    model = onnxai.Model(onnx_models.sklearn_onnx(clf, X), providers="cpu")
    logits = model.scores(X[:20], "logits")
    np.testing.assert_allclose(logits[:, 1], clf.decision_function(X[:20]), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(logits[:, 0], -logits[:, 1], rtol=1e-5, atol=1e-5)
    y3 = np.digitize(X[:, 0] + X[:, 2], [-0.5, 0.5])
    clf3 = LogisticRegression().fit(X, y3)  # multinomial: a softmax of decision_function
    model3 = onnxai.Model(onnx_models.sklearn_onnx(clf3, X), providers="cpu")
    np.testing.assert_allclose(model3.scores(X[:20], "logits"), margin(clf3.decision_function(X[:20])),
                               rtol=1e-3, atol=1e-3)


def _probabilities_only(scale=8.0):
    """conv_net with a Softmax the graph then multiplies by 1 (no node to cut before) and logits scaled up
    so that the picture's top class saturates."""
    m, p = onnx_models.conv_net(size=8, softmax=True, seed=2)
    for init in m.graph.initializer:
        if init.name in ("fc_w", "fc_b"):
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * scale, init.name))
    p = dict(p, F=p["F"] * scale, c=p["c"] * scale)
    m.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "one"))
    m.graph.node.append(helper.make_node("Mul", ["probs", "one"], ["out"], name="after_softmax"))
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 5]))
    onnx.checker.check_model(m)
    return m, p


def test_a_saturated_probability_only_picture_model_explains_its_log_odds():
    m, p = _probabilities_only()
    model = onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=8))
    assert model.outputs_probabilities and model.logits_output == model.output
    image = np.random.default_rng(4).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    x = model.preprocess(image)
    z = conv_forward(x, p)[1]
    target = int(z.argmax())
    assert model.run_batch(x)[0, target] > 0.999
    np.testing.assert_allclose(model.run_batch(x, "logits")[0, target], margin(z)[0, target], rtol=1e-3)
    e = onnxai.Occlusion(window=4, stride=2).explain(model, image, target=target)
    assert "logits" in e.extras["score_note"]
    # the map is the drop of the target's log-odds, not of log p (which is about 0 throughout)
    occluded = onnxai.Occlusion(window=4, stride=2, score="logits").explain(model, image, target=target)
    np.testing.assert_allclose(e.map, occluded.map, rtol=1e-6)
    assert np.ptp(e.map) > 1.0
