"""Table models read by onnxai (onnxai/tables/data.py adapts them): skl2onnx ZipMap and plain outputs,
string labels and class order, one input per column. ``cancer`` and ``forest`` are fixtures in conftest.py."""

import numpy as np
import pytest

import onnxai
from onnx_models import columns_net, sklearn_onnx


@pytest.mark.parametrize("zipmap", [True, False])
def test_forest_probabilities_equal_predict_proba(cancer, forest, zipmap):
    X, _ = cancer
    model = onnxai.load(sklearn_onnx(forest, X, zipmap), providers="cpu")
    assert not model.input.is_image and model.input.shape == (None, 30)
    p = model.scores(X.astype(np.float32))
    assert p.shape == (X.shape[0], 2)
    assert np.abs(p - forest.predict_proba(X.astype(np.float32))).max() <= 1e-5
    assert model.labels == ["0", "1"]  # classlabels_int64s, the order of forest.classes_


def test_string_labels_and_class_order(cancer):
    X, y = cancer
    names = np.array(["malignant", "benign"])[y]  # sklearn sorts: classes_ = ['benign', 'malignant']
    rf = pytest.importorskip("sklearn.ensemble").RandomForestClassifier(10, max_depth=4, random_state=0).fit(X, names)
    for zipmap in (True, False):
        model = onnxai.load(sklearn_onnx(rf, X, zipmap), providers="cpu")
        assert model.labels == list(rf.classes_) == ["benign", "malignant"]
        assert np.abs(model.scores(X[:50].astype(np.float32)) - rf.predict_proba(X[:50].astype(np.float32))).max() <= 1e-5
        assert model.class_index("malignant") == 1


def test_one_input_per_column():
    # three inputs: a float, an int64 and a float (n, 2) block, concatenated and scored linearly
    m, w = columns_net()
    model = onnxai.load(m, providers="cpu")
    assert model.input.shape == (None, 4) and [c[0] for c in model.columns] == ["a", "b", "c"]
    X = np.array([[0.5, 2, 1.0, -1.0], [1.0, 3, 0.0, 0.5]])
    z = X @ w
    ref = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.scores(X), ref, rtol=1e-5)
    e = onnxai.KernelSHAP(nsamples=14, background=np.zeros((1, 4))).explain(model, X)
    np.testing.assert_allclose(e.values.sum(axis=1), e.predictions - e.base_values, atol=1e-9)


# --------------------------------------------------------------------------- tables and errors

