"""Regression adjustment for Kernel SHAP on pictures: a learned surrogate of the scores as a control variate.

With ``KernelSHAP(adjust=c)`` the Shapley values of a run are

    phi = phi_n(y) - c * (phi_n(g) - phi_big(g))

where phi_n is the constrained least squares on the run's own coalitions, g a gradient-boosted tree
ensemble (scikit-learn's HistGradientBoostingRegressor) fitted to the scored coalitions and the two
ends, and phi_big(g) g's Shapley values from a large coalition design scored on g alone
(``BIG_DESIGN`` rows, no forward passes). phi_n(g) - phi_big(g) estimates zero, so phi targets the
same Shapley values as plain Kernel SHAP; where the scores move with g it cancels part of the
sampling noise. This follows the regression-adjusted Monte Carlo estimators of Witter, Liu & Musco
(2025, "Regression-adjusted Monte Carlo estimators for Shapley values and probabilistic values"). They
estimate the residual by Monte Carlo; here it goes through Kernel SHAP's own fit.
Efficiency holds exactly: phi_n(g) and phi_big(g) both sum to g(all) - g(none).

c < 1 is a shrunken control variate. g is fitted on the same few hundred coalitions it corrects, so
the correction carries g's own fitting noise, and the best coefficient (Cov / Var) is below 1.
Measured on the shipped model (``python -m tools.bench limits``, 10 seeds, mean squared error
against a 12,000-sample reference), c = 0.5 cut the error 1.11 / 1.32 / 1.80x at 400 samples and
1.09 / 1.42 / 1.69x at 1000 on chelsea / coffee / rocket. On camera, a picture the choice of c never
saw, 2.85x at 400 and 2.51x at 1000 (c = 1 there: 6.3x and 4.3x).
c = 1 helped on rocket (1.8-2x) and hurt on chelsea and coffee (1.4-1.5x). The fits cost about 1.4 s
a class at 1000 coalitions on 2 cores (three ensembles, 200 trees each), and the large design about
0.5 s once per feature count. The standard errors are the delta method's on the residual scores y - c g_out, where g_out is g refitted
without the rows' own fold (two folds of the sampling units). Residuals from g itself would be shrunk
by its fit: on the test game their 95% intervals covered 77% of the exact values, against 94% out of
fold.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..kernels.coalitions import shapley_coalitions

BIG_DESIGN = 50000  # coalitions scored on g alone for its Shapley values (all 2^M - 2 when fewer)


def check_adjust(adjust) -> float | None:
    """None (off) or the coefficient c in (0, 1]."""
    if adjust is None:
        return None
    if isinstance(adjust, bool) or not isinstance(adjust, (int, float, np.integer, np.floating)) \
            or not np.isfinite(adjust) or not 0 < adjust <= 1:
        raise InputError(f"adjust is the regression adjustment's coefficient, a number in (0, 1] (0.5 is the measured "
                         f"choice), or None for plain Kernel SHAP; got {adjust!r}")
    return float(adjust)


def surrogate(X: np.ndarray, y: np.ndarray, seed: int):
    """g: the gradient-boosted ensemble (200 trees, leaves of at least 10) fitted to rows X (n, M) and
    scores y (n,); -> a function of (q, M) rows. The limits bench fits the same one."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=200, min_samples_leaf=10, random_state=seed)
    model.fit(np.asarray(X, np.float64), y)
    return lambda Q: model.predict(np.asarray(Q, np.float64))


def _surrogate(masks: np.ndarray, y: np.ndarray, f0: float, fx: float, seed: int):
    """g fitted to the coalitions' scores y (n,) and both ends."""
    M = masks.shape[1]
    return surrogate(np.concatenate([masks, np.ones((1, M)), np.zeros((1, M))]), np.r_[y, fx, f0], seed)


def adjust(solve, masks, weights, scores, fnull, fx, targets, c: float, seed: int, big: tuple, units):
    """-> (phi (M, T) adjusted, (scores, fnull, fx, phi) of the residual for the standard errors).

    solve: KernelSHAP.solve; masks (n, M), weights (n,), scores (n, C), fnull / fx (C,): the run's;
    targets: the T classes; big: (masks, weights) of the large design (``big_design``); units (n,):
    the sampling unit of each row (a coalition and its complement are one), which deals the rows into
    the two folds of the residual."""
    M = masks.shape[1]
    bz, bw = big
    ends = np.array([np.ones(M), np.zeros(M)])
    targets = list(targets)
    T = len(targets)
    y = np.asarray(scores, np.float64)[:, targets]
    f0 = np.asarray(fnull, np.float64)[targets]
    f1 = np.asarray(fx, np.float64)[targets]
    phi = solve(masks, weights, y, f0, f1, list(range(T)))
    g_rows, g_big, g_out = np.empty_like(y), np.empty((bz.shape[0], T)), np.empty_like(y)
    g1, g0 = np.empty(T), np.empty(T)
    fold = np.asarray(units) % 2
    for i in range(T):
        g = _surrogate(masks, y[:, i], f0[i], f1[i], seed)
        g_rows[:, i], g_big[:, i] = g(masks), g(bz)
        g1[i], g0[i] = g(ends)
        for f in (0, 1):  # out-of-fold values: residuals that g's own fit has not shrunk
            into, other = fold == f, fold != f
            fitted = _surrogate(masks[other], y[other, i], f0[i], f1[i], seed) if other.any() else g
            g_out[into, i] = fitted(masks[into]) if into.any() else 0.0
    on_rows = solve(masks, weights, g_rows, g0, g1, list(range(T)))
    exact = solve(bz, bw, g_big, g0, g1, list(range(T)))
    r = y - c * g_out
    r0, r1 = f0 - c * g0, f1 - c * g1
    residual = (r, r0, r1, solve(masks, weights, r, r0, r1, list(range(T))))
    return phi - c * (on_rows - exact), residual


def big_design(M: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The large coalition design g's Shapley values are read from: Kernel SHAP's stratified design."""
    if M < 2:
        raise InputError("the regression adjustment needs at least 2 features")
    return shapley_coalitions(M, min(BIG_DESIGN, 2 ** min(M, 30) - 2), seed, "stratified")
