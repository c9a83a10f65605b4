"""LIME for table rows (onnxai/methods/lime_tabular.py) on a skl2onnx forest and on a hand-built linear table
model, and onnxai.explain routing method="lime" on a table model to it."""

import numpy as np
import pytest

import onnxai
from onnx_models import linear_table_net, sklearn_onnx, softmax_table_net
from onnxai.methods.lime_tabular import LimeTabular


def test_lime_tabular(cancer, forest):
    X, y = cancer
    model = onnxai.load(sklearn_onnx(forest, X), providers="cpu")
    lime = LimeTabular(X, num_samples=2000, seed=0)
    e = lime.explain(model, X[:2])
    assert e.values.shape == (2, 30, 2)
    # two classes summing to 1: the surrogates of the two classes are mirror images
    np.testing.assert_allclose(e.values[:, :, 0], -e.values[:, :, 1], atol=1e-6)
    assert e.extras["kernel_width"] == pytest.approx(np.sqrt(30) * 0.75)
    # Which features matter is known when the model is built so: class 1's logit is 3 x1 - 2 x5 and the
    # other six features are ignored. For every row the two largest LIME weights are features 1 and 5,
    # each with the sign of its term (a row below the typical x1 lowers class 1). (This replaces
    # "3 of the top 8 agree with the forest's feature importances", which random rankings pass often.)
    W = np.zeros((8, 2), np.float32)
    W[1, 1], W[5, 1] = 3.0, -2.0
    known = onnxai.load(softmax_table_net(W), providers="cpu")
    T = np.random.default_rng(0).standard_normal((500, 8))
    e = LimeTabular(T, num_samples=2000, seed=0).explain(known, T[:4])
    for r in range(4):
        v = e.values[r, :, 1]
        assert set(np.argsort(-np.abs(v))[:2]) == {1, 5}, v
        assert np.sign(v[1]) == np.sign(W[1, 1] * T[r, 1]) and np.sign(v[5]) == np.sign(W[5, 1] * T[r, 5]), v


def test_explain_api_routes_lime_on_a_table_model_to_tabular_lime():
    import numpy as np
    import onnxai

    model = onnxai.load(linear_table_net(), providers="cpu")
    X = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    with pytest.raises(onnxai.InputError, match="needs training rows"):
        onnxai.explain(model, X[:2], method="lime")
    res = onnxai.explain(model, X[:2], method="lime", background=X, num_samples=300)
    assert res.values.shape[:2] == (2, 3)
