"""Shared fixtures. The hand-built ONNX models live in tests/onnx_models.py (import it, or use the fixtures
below); a test that needs an optional library (skl2onnx, shap, lime, captum, torch) skips itself with
pytest.importorskip inside the test or the fixture that uses it, never at module level."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("ONNXAI_QUIET", "")

import onnx_models  # noqa: E402


@pytest.fixture(scope="session")
def region_model():
    """(Model, mask): onnx_models.region_net, 16x16, class 1 reads region (4, 10, 4, 10); mean 0.5, std 0.25."""
    return onnx_models.region_model()


@pytest.fixture(scope="session")
def conv_model():
    """Model: onnx_models.conv_net, 16x16, 8 channels, 3 classes; mean 0.5, std 0.25."""
    return onnx_models.conv_model()


@pytest.fixture(scope="session")
def table_model():
    """Model: onnx_models.mlp_model(4): a non-linear (n, 4) -> 3-class softmax classifier."""
    return onnx_models.mlp_model(4)


@pytest.fixture(scope="session")
def cancer():
    """(X, y) of scikit-learn's breast cancer table, X rounded through float32."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_breast_cancer(return_X_y=True)
    return X.astype(np.float32).astype(np.float64), y


@pytest.fixture(scope="session")
def forest(cancer):
    """A random forest (30 trees, depth 6) fitted on ``cancer``."""
    ensemble = pytest.importorskip("sklearn.ensemble")
    X, y = cancer
    return ensemble.RandomForestClassifier(30, max_depth=6, random_state=0).fit(X, y)


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """onnx_models.dataset_files in a session folder: model files, pictures, a table, a background."""
    return onnx_models.dataset_files(tmp_path_factory.mktemp("dataset"))
