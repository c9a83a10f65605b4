"""Background summaries of table rows (onnxai/tables/background.py): k-means snapped to real values, samples."""

import numpy as np
import pytest

from onnxai import tables


def test_summaries():
    X = np.random.default_rng(0).standard_normal((100, 3))
    bg = tables.summarise(X, 7)
    assert bg.data.shape == (7, 3) and bg.weights.sum() == pytest.approx(1.0)
    assert all(np.isin(bg.data[:, j], X[:, j]).all() for j in range(3))  # snapped to real values
    s = tables.summarise(X, 5, "sample", seed=1)
    assert s.data.shape == (5, 3) and np.allclose(s.weights, 0.2)
