"""LIME for tables as lime's LimeTabularExplainer does it by default: quartile discretisation, sampling
bins by their training frequencies (or around the instance), kernel width sqrt(M) * 0.75, ridge
surrogate. Returns a tables.TabularExplanation for all rows and classes.
"""

from __future__ import annotations

import time

import numpy as np

from .. import kernels
from ..errors import InputError
from ..tables import Background, TabularExplanation, class_names, resolve_row_targets, table_rows


class LimeTabular:
    """LIME for table rows, following lime's LimeTabularExplainer defaults.

    training: the data set to learn the quartiles and the scale from (or a Background);
    num_samples: perturbed rows per explained row (lime: 5000); discretize: True = quartiles;
    sample_around_instance: False samples bins by their frequency in the training data (lime's default);
    kernel_width: None = sqrt(M) * 0.75; alpha: ridge penalty (lime: Ridge(alpha=1)).
    values[r, j, c] are the ridge weights on the binary "same bin as the row" features.
    """

    name = "lime-tabular"

    def __init__(self, training, num_samples: int = 5000, discretize: bool = True,
                 sample_around_instance: bool = False, kernel_width: float | None = None, alpha: float = 1.0,
                 seed: int = 0, feature_names=None):
        T = training.data if isinstance(training, Background) else np.asarray(training, np.float64)
        if T.ndim != 2 or T.shape[0] < 2:
            raise InputError("LIME for tables needs training data: at least 2 rows of the model's features")
        self.training = T
        self.num_samples = int(num_samples)
        self.discretize = bool(discretize)
        self.sample_around_instance = bool(sample_around_instance)
        self.kernel_width = kernel_width
        self.alpha = float(alpha)
        self.seed = int(seed)
        self.feature_names = feature_names
        M = T.shape[1]
        self.mean = np.nanmean(T, axis=0)
        self.scale = np.nanstd(T, axis=0)
        self.scale[self.scale == 0] = 1.0
        if self.discretize:
            self.bounds = [np.unique(np.nanpercentile(T[:, j], [25, 50, 75])) for j in range(M)]
            D = self._bins(T)
            self.freqs = [np.bincount(D[:, j], minlength=len(self.bounds[j]) + 1) / T.shape[0] for j in range(M)]
            self.bin_stats = []
            for j in range(M):
                stats = []
                lo_all, hi_all = np.nanmin(T[:, j]), np.nanmax(T[:, j])
                edges = np.r_[lo_all, self.bounds[j], hi_all]
                for b in range(len(self.bounds[j]) + 1):
                    sel = T[D[:, j] == b, j]
                    mu = float(sel.mean()) if sel.size else float(edges[b])
                    sd = float(sel.std()) if sel.size else 0.0
                    stats.append((mu, sd, float(edges[b]), float(edges[b + 1])))
                self.bin_stats.append(stats)

    def params(self) -> dict:
        return {"num_samples": self.num_samples, "discretize": self.discretize,
                "sample_around_instance": self.sample_around_instance, "kernel_width": self.kernel_width,
                "alpha": self.alpha, "seed": self.seed}

    def _bins(self, X):
        return np.stack([np.searchsorted(self.bounds[j], X[:, j], side="left") for j in range(X.shape[1])], axis=1)

    def _undiscretize(self, D, rng):
        from scipy.stats import truncnorm

        out = np.empty(D.shape)
        for j in range(D.shape[1]):
            for b, (mu, sd, lo, hi) in enumerate(self.bin_stats[j]):
                sel = D[:, j] == b
                m = int(sel.sum())
                if not m:
                    continue
                if sd <= 0:
                    out[sel, j] = mu
                    continue
                a, bb = (lo - mu) / sd, (hi - mu) / sd
                out[sel, j] = truncnorm.rvs(a, bb, loc=mu, scale=sd, size=m, random_state=rng)
        return out

    def samples(self, row: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        """-> (binary/scaled representation (n, M) for the surrogate, rows in data space (n, M))."""
        n, M = self.num_samples, row.shape[0]
        if self.discretize:
            first = self._bins(row[None])[0]
            D = np.empty((n, M), np.int64)
            for j in range(M):
                p = self.freqs[j]
                D[:, j] = rng.choice(len(p), size=n, p=p)
            binary = (D == first[None]).astype(np.float64)
            binary[0] = 1
            inverse = self._undiscretize(D, rng)
            inverse[0] = row
            return binary, inverse
        Z = rng.standard_normal((n, M))
        inverse = Z * self.scale + (row if self.sample_around_instance else self.mean)
        inverse[0] = row
        return (inverse - self.mean) / self.scale, inverse

    def explain(self, model, X, target=None, feature_names=None) -> TabularExplanation:
        t0 = time.perf_counter()
        X, names = table_rows(model, X, feature_names or self.feature_names)
        M = X.shape[1]
        width = self.kernel_width if self.kernel_width is not None else np.sqrt(M) * 0.75
        rng = np.random.default_rng(self.seed)
        preds = model.scores(X).astype(np.float64)
        C = preds.shape[1]
        values = np.zeros((X.shape[0], M, C))
        intercepts = np.zeros((X.shape[0], C))
        r2 = np.zeros((X.shape[0], C))
        forward = 0.0
        for i, row in enumerate(X):
            rep, inverse = self.samples(row, rng)
            tf = time.perf_counter()
            y = model.scores(inverse).astype(np.float64)
            forward += time.perf_counter() - tf
            # lime sets mean 0 / scale 1 for discretised (categorical) columns: distances on the binary rows
            d = np.sqrt(((rep - rep[0]) ** 2).sum(axis=1))
            w = np.sqrt(np.exp(-(d ** 2) / width ** 2))
            for c in range(C):
                coef, icpt = kernels.weighted_ridge(rep, y[:, c], w, alpha=self.alpha)
                values[i, :, c] = coef
                intercepts[i, c] = icpt
                r2[i, c] = kernels.weighted_r2(rep, y[:, c], w, coef, icpt)
        targets = resolve_row_targets(model, preds, target)
        return TabularExplanation(values=values, base_values=intercepts, predictions=preds, data=X,
                                  feature_names=names, class_names=class_names(model), method="lime",
                                  rows=list(range(X.shape[0])), targets=targets, params=self.params(),
                                  extras={"r2": r2.tolist(), "kernel_width": float(width)},
                                  timings={"total": time.perf_counter() - t0, "forward": forward})
