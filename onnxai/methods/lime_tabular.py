"""LIME for tables as lime's LimeTabularExplainer does it by default: quartile discretisation, sampling
bins by their training frequencies (or around the instance), kernel width sqrt(M) * 0.75, ridge
surrogate. Returns a tables.TabularExplanation for all rows and classes.

The perturbed rows of each explained row go through the perturb-and-score engine (a RowSamples
source: rows given outright, chunked like every other method's inputs).
"""

from __future__ import annotations

import time

import numpy as np

from .. import engine, kernels
from ..errors import InputError
from ..tables import Background, TabularExplanation, class_names, resolve_row_targets, table_rows
from ..kernels.variance import ridge_stderr
from .base import AUTO_MAX_SAMPLES, Method, check_budget, check_number, check_score, check_seed, deprecated_alias


class LimeTabular(Method):
    """LIME for table rows, following lime's LimeTabularExplainer defaults.

    background: the training rows to learn the quartiles and the scale from (or a Background; the
    old name ``training`` is deprecated);
    num_samples: perturbed rows per explained row (lime: 5000); discretize: True = quartiles;
    sample_around_instance: False samples bins by their frequency in the training data (lime's default);
    kernel_width: None = sqrt(M) * 0.75; alpha: ridge penalty (lime: Ridge(alpha=1)).
    values[r, j, c] are the ridge weights on the binary "same bin as the row" features; stderr[r, j, c]
    their sandwich standard errors (``kernels.variance.ridge_stderr``). num_samples="auto" (with
    tolerance, max_samples) samples each row until its standard errors settle (all classes).
    """

    name = "lime-tabular"
    inputs = "tables"

    def __init__(self, background=None, num_samples: int = 5000, discretize: bool = True,
                 sample_around_instance: bool = False, kernel_width: float | None = None, alpha: float = 1.0,
                 seed: int = 0, feature_names=None, score: str = "probabilities", progress: bool | None = None,
                 chunk_size: int | None = None, memory_budget: int = engine.DEFAULT_MEMORY_BUDGET, training=None,
                 tolerance: float | None = None, max_samples: int = AUTO_MAX_SAMPLES):
        background = deprecated_alias("LimeTabular", "training", "background", training, background, None)
        if background is None:
            raise InputError("LIME for a table model needs training rows to learn the quartiles from: "
                             "pass background=... (an array of rows, or --background train.csv)")
        try:
            T = background.data if isinstance(background, Background) else np.asarray(background, np.float64)
        except (TypeError, ValueError):
            raise InputError(f"background must be training rows of numbers, an (n, M) array; got "
                             f"{type(background).__name__}") from None
        if T.ndim != 2 or T.shape[0] < 2:
            raise InputError("LIME for tables needs training data: at least 2 rows of the model's features")
        self._training = T
        self.num_samples, self.tolerance, self.max_samples = check_budget(num_samples, tolerance, max_samples, 2)
        self.discretize = bool(discretize)
        self.sample_around_instance = bool(sample_around_instance)
        self.kernel_width = None if kernel_width is None else check_number(kernel_width, "kernel_width", 0, low_open=True)
        self.alpha = check_number(alpha, "alpha", 0)
        self.seed = check_seed(seed)
        self.feature_names = feature_names
        self._engine_options(check_score(score), progress, chunk_size, memory_budget)
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
        return {"num_samples": self.num_samples, "tolerance": self.tolerance, "max_samples": self.max_samples,
                "discretize": self.discretize,
                "sample_around_instance": self.sample_around_instance, "kernel_width": self.kernel_width,
                "alpha": self.alpha, "seed": self.seed, "score": self.score}

    def _bins(self, X):
        return np.stack([np.searchsorted(self.bounds[j], X[:, j], side="left") for j in range(X.shape[1])], axis=1)

    def _undiscretize(self, D, rng):
        """Each sampled bin's value from the training rows' truncated normal in that bin (lime's way):
        the uniforms are drawn bin by bin as ``truncnorm.rvs`` draws them (inverse CDF), then one
        vectorised ``truncnorm.ppf`` for all bins: the same numbers as a ``rvs`` call per bin, at a
        fraction of its per-call cost (16 calls were half of a row's time)."""
        from scipy.stats import truncnorm

        out = np.empty(D.shape)
        cells, us, lows, highs = [], [], [], []
        for j in range(D.shape[1]):
            for b, (mu, sd, lo, hi) in enumerate(self.bin_stats[j]):
                sel = np.flatnonzero(D[:, j] == b)
                if not sel.size:
                    continue
                if sd <= 0:
                    out[sel, j] = mu
                    continue
                us.append(rng.uniform(size=sel.size))
                lows.append(np.full(sel.size, (lo - mu) / sd))
                highs.append(np.full(sel.size, (hi - mu) / sd))
                cells.append((sel, j, mu, sd))
        if cells:
            vals = truncnorm.ppf(np.concatenate(us), np.concatenate(lows), np.concatenate(highs))
            at = 0
            for sel, j, mu, sd in cells:
                out[sel, j] = vals[at:at + sel.size] * sd + mu
                at += sel.size
        return out

    def samples(self, row: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        """-> (binary/scaled representation (n, M) for the surrogate, rows in data space (n, M))."""
        n, M = (self.max_samples if self.num_samples == "auto" else self.num_samples), row.shape[0]
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

    def explain(self, model, X, target=None, feature_names=None, cropped: bool = False) -> TabularExplanation:
        """Surrogate weights of every row of X ((r, M) array or a CSV path) for every class."""
        if model.input.is_image:
            raise InputError("LimeTabular explains table rows; for pictures use LIME (method 'lime')")
        t0 = time.perf_counter()
        X, names = table_rows(model, X, feature_names or self.feature_names)
        M = X.shape[1]
        width = self.kernel_width if self.kernel_width is not None else np.sqrt(M) * 0.75
        rng = np.random.default_rng(self.seed)
        preds = model.scores(X, self.score).astype(np.float64)
        C = preds.shape[1]
        values = np.zeros((X.shape[0], M, C))
        intercepts = np.zeros((X.shape[0], C))
        r2 = np.zeros((X.shape[0], C))
        stderr = np.zeros((X.shape[0], M, C))
        forward = engine_s = 0.0
        dtype = model.input.dtype
        used, stopped = [], []
        for i, row in enumerate(X):
            rep, inverse = self.samples(row, rng)
            # lime sets mean 0 / scale 1 for discretised (categorical) columns: distances on the binary rows
            d = np.sqrt(((rep - rep[0]) ** 2).sum(axis=1))
            w_all = np.sqrt(np.exp(-(d ** 2) / width ** 2))

            def fit(y, rep=rep, w_all=w_all):
                n = y.shape[0]
                coef = np.zeros((M, C))
                icpt = np.zeros(C)
                for c in range(C):
                    coef[:, c], icpt[c] = kernels.weighted_ridge(rep[:n], y[:, c], w_all[:n], alpha=self.alpha)
                return coef, icpt, ridge_stderr(rep[:n], y, w_all[:n], coef, icpt, self.alpha)

            check = None
            if self.num_samples == "auto":
                check = self.auto_check(lambda run: (lambda f: (list(f[0].T), list(f[2].T)))(
                    fit(run.scores.astype(np.float64))))
            res = self._run(model, np.ascontiguousarray(row[None], dtype=dtype), None, engine.RowSamples(inverse),
                            ends=0, check=check)
            forward += res.forward_s
            engine_s += res.total_s
            y = res.scores.astype(np.float64)
            coef, icpt, se = fit(y)
            values[i], intercepts[i], stderr[i] = coef, icpt, se
            n = y.shape[0]
            for c in range(C):
                r2[i, c] = kernels.weighted_r2(rep[:n], y[:, c], w_all[:n], coef[:, c], icpt[c])
            used.append(int(n))
            stopped.append(res.stopped)
        targets = resolve_row_targets(model, preds, target)
        extras = {"r2": r2.tolist(), "kernel_width": float(width), "score": self.score, "num_samples": used}
        if self.num_samples == "auto":
            extras.update(stopped=stopped, tolerance=self.auto_tolerance(ranks=False),
                          max_samples=self.max_samples)
        return TabularExplanation(values=values, base_values=intercepts, predictions=preds, data=X, stderr=stderr,
                                  feature_names=names, class_names=class_names(model), method=self.name,
                                  rows=list(range(X.shape[0])), targets=targets, params=self.params(),
                                  extras=extras,
                                  timings={"total": time.perf_counter() - t0, "forward": forward, "engine": engine_s})
