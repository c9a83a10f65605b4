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

``adjust="auto"`` chooses c per class from the run itself (``choose_c``): the best coefficient of a
control variate, Cov / Var, read from the delta-method variances of the out-of-fold surrogate, never
below 0.5 and at most 1.

c < 1 is a shrunken control variate. g is fitted on the same few hundred coalitions it corrects, so
the correction carries g's own fitting noise, and the best coefficient (Cov / Var) is below 1.
Measured on the shipped model (``python -m tools.bench limits``, 10 seeds, mean squared error
against a 12,000-sample reference), c = 0.5 cut the error 1.10 / 1.32 / 1.82x at 400 samples and
1.09 / 1.42 / 1.70x at 1000 on chelsea / coffee / rocket. On camera, a picture the choice of c never
saw, 2.81x at 400 and 2.40x at 1000 (c = 1 there: 6.2x and 3.9x).
c = 1 helped on rocket (1.8-2x) and hurt on chelsea and coffee (1.4-1.5x). The fits cost about 1.4 s
a class at 1000 coalitions on 2 cores (three ensembles, 200 trees each), and the large design about
0.5 s once per feature count. The standard errors are the delta method's on the residual scores
y - c g_out, where g_out is g refitted without the rows' own fold (two folds of the sampling units),
with Kernel SHAP's leverage correction (``kernels.variance.shapley_stderr``). Residuals from g itself
would be shrunk by its fit: on the test game their 95% intervals covered 77% of the exact values,
against 93% out of fold and 95% out of fold with the leverage correction.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..kernels.coalitions import shapley_coalitions

BIG_DESIGN = 50000  # coalitions scored on g alone for its Shapley values (all 2^M - 2 when fewer)
FLOOR = 0.5  # adjust="auto" never goes below the measured fixed choice (see choose_c)


def check_adjust(adjust) -> float | str | None:
    """None (off), "auto" (c chosen per class, ``choose_c``) or the coefficient c in (0, 1]."""
    if adjust is None:
        return None
    if isinstance(adjust, str) and adjust.strip().lower() == "auto":
        return "auto"
    if isinstance(adjust, bool) or not isinstance(adjust, (int, float, np.integer, np.floating)) \
            or not np.isfinite(adjust) or not 0 < adjust <= 1:
        raise InputError(f"adjust is the regression adjustment's coefficient: a number in (0, 1], 'auto' (chosen per "
                         f"class from the run's own variances, at least {FLOOR:g}), or None for plain Kernel SHAP; "
                         f"got {adjust!r}")
    return float(adjust)


def choose_c(solve, stderr, masks, weights, y, g_out, ends_y, ends_g) -> np.ndarray:
    """c per class (T,) for ``adjust="auto"``: the control variate's best coefficient Cov / Var, summed over
    features, from the delta-method variances (``stderr``) of the fit applied to y, to g_out and to
    y - g_out (Var(a - b) = Var a + Var b - 2 Cov), then kept within [FLOOR, 1].

    g_out, the out-of-fold surrogate, was fitted on half the rows, so it follows the scores less well than
    the g the correction uses, and its estimate can be low (0 or below on chelsea and rocket at 400
    coalitions, where c = 0.5 still helped); hence the floor. Measured on the shipped model's six pictures
    (chelsea, coffee, rocket, camera, astronaut, clock; 10 seeds of the sequential design at 400 and 1000
    coalitions against a 20,000-coalition reference): where the surrogate follows the scores closely
    (camera, clock) it reads 0.75-1 and cut the error 1.1-2x more than c = 0.5; on chelsea, rocket and
    astronaut it tied with 0.5 (0.98-1.06x); on coffee it read 0.6-0.7 and lost (0.90x at 400, 0.82x at
    1000). Geometric mean over the twelve: 1.14x c = 0.5's gain.
    ends_y, ends_g: (fnull, fx) of the scores and of g, each (T,)."""
    T = y.shape[1]
    cols = list(range(T))

    def variance(r, r0, r1):  # the plain sandwich: c and FLOOR were measured with it (a ratio of variances)
        return stderr(masks, weights, r, r0, r1, solve(masks, weights, r, r0, r1, cols), cols, leverage=False) ** 2

    (f0, f1), (g0, g1) = ends_y, ends_g
    vy, vg = variance(y, f0, f1), variance(g_out, g0, g1)
    vd = variance(y - g_out, f0 - g0, f1 - g1)
    cov, var = (vy + vg - vd).sum(axis=0) / 2, vg.sum(axis=0)
    c = np.where(var > 0, cov / np.where(var > 0, var, 1.0), FLOOR)
    return np.clip(c, FLOOR, 1.0)


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


def adjust(solve, masks, weights, scores, fnull, fx, targets, c, seed: int, big: tuple, units, stderr=None):
    """-> (phi (M, T) adjusted, (scores, fnull, fx, phi) of the residual for the standard errors, c (T,) used).

    solve: KernelSHAP.solve; masks (n, M), weights (n,), scores (n, C), fnull / fx (C,): the run's;
    targets: the T classes; c: a number in (0, 1] or "auto" (then stderr, KernelSHAP.stderr, is needed:
    ``choose_c``); big: (masks, weights) of the large design (``big_design``); units (n,): the sampling
    unit of each row (a coalition and its complement are one), which deals the rows into the two folds
    of the residual."""
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
    if c == "auto":
        if stderr is None:
            raise ValueError('adjust="auto" needs the stderr of the fit')
        cs = choose_c(solve, stderr, masks, weights, y, g_out, (f0, f1), (g0, g1))
    else:
        cs = np.full(T, float(c))
    r = y - cs * g_out
    r0, r1 = f0 - cs * g0, f1 - cs * g1
    residual = (r, r0, r1, solve(masks, weights, r, r0, r1, list(range(T))))
    return phi - cs * (on_rows - exact), residual, cs


def big_design(M: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The large coalition design g's Shapley values are read from: Kernel SHAP's stratified design."""
    if M < 2:
        raise InputError("the regression adjustment needs at least 2 features")
    return shapley_coalitions(M, min(BIG_DESIGN, 2 ** min(M, 30) - 2), seed, "stratified")
