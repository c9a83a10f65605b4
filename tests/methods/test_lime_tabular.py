"""LIME for table rows (onnxai/methods/lime_tabular.py) on a skl2onnx forest and on a hand-built linear table
model, and onnxai.explain routing method="lime" on a table model to it."""

import numpy as np
import pytest

import onnxai
from onnx_models import linear_table_net, sklearn_onnx
from onnxai.methods.lime_tabular import LimeTabular


def test_lime_tabular(cancer, forest):
    X, y = cancer
    model = onnxai.load(sklearn_onnx(forest, X), providers="cpu")
    lime = LimeTabular(X, num_samples=2000, seed=0)
    e = lime.explain(model, X[:2])
    assert e.values.shape == (2, 30, 2)
    # two classes summing to 1: the surrogates of the two classes are mirror images
    np.testing.assert_allclose(e.values[:, :, 0], -e.values[:, :, 1], atol=1e-6)
    # the most important features of the forest show up among LIME's largest weights
    top = np.argsort(-np.abs(e.values[0, :, 1]))[:8]
    assert len(set(top) & set(np.argsort(-forest.feature_importances_)[:8])) >= 3
    assert e.extras["kernel_width"] == pytest.approx(np.sqrt(30) * 0.75)


def test_explain_api_routes_lime_on_a_table_model_to_tabular_lime():
    import numpy as np
    import onnxai

    model = onnxai.load(linear_table_net(), providers="cpu")
    X = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    with pytest.raises(onnxai.InputError, match="needs training rows"):
        onnxai.explain(model, X[:2], method="lime")
    res = onnxai.explain(model, X[:2], method="lime", background=X, num_samples=300)
    assert res.values.shape[:2] == (2, 3)
