"""Backgrounds: the rows a hidden table column takes its values from.

    Background   data (b, M) rows and weights (b,) summing to 1
    summarise    k-means centres weighted by cluster size (like shap.kmeans, values snapped to the
                 nearest real value of each column), a random sample, or all rows
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass
class Background:
    """A background data set: data (b, M) float64 rows and weights (b,) summing to 1."""

    data: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        self.data = np.atleast_2d(np.asarray(self.data, np.float64))
        self.weights = np.asarray(self.weights, np.float64)
        if self.weights.shape != (self.data.shape[0],) or not self.weights.sum() > 0:
            raise InputError("background weights need one non-negative number per row with a positive sum")
        self.weights = self.weights / self.weights.sum()


def summarise(X, k: int = 10, method: str = "kmeans", seed: int = 0) -> Background:
    """Background rows from training data X (n, M).

    "kmeans": k centres by scikit-learn's KMeans (random_state=seed), each value snapped to the nearest
    value of that column in X, weighted by cluster sizes (shap.kmeans with round_values=True);
    "sample": k rows drawn without replacement, equal weights; "all": X itself.
    """
    if isinstance(X, Background):
        return X
    X = np.atleast_2d(np.asarray(X, np.float64))
    if method == "all" or X.shape[0] <= k:
        return Background(X, np.ones(X.shape[0]))
    if method == "sample":
        idx = np.sort(np.random.default_rng(seed).choice(X.shape[0], int(k), replace=False))
        return Background(X[idx], np.ones(len(idx)))
    if method != "kmeans":
        raise InputError(f"unknown background summary {method!r}; use 'kmeans', 'sample' or 'all'")
    from sklearn.cluster import KMeans

    Xf = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    km = KMeans(n_clusters=int(k), random_state=seed, n_init=10).fit(Xf)
    centres = km.cluster_centers_.copy()
    for j in range(X.shape[1]):
        col = Xf[:, j]
        centres[:, j] = col[np.abs(col[None, :] - centres[:, j:j + 1]).argmin(axis=1)]
    return Background(centres, np.bincount(km.labels_, minlength=int(k)).astype(np.float64))
