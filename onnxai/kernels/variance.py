"""Standard errors of sampled estimates: arrays in, arrays out (numpy; the sums are small matmuls).

    design_variance       the variance of a weighted sum over sampled units, from the design that drew
                          them: strata (sizes of Kernel SHAP coalitions), units (a coalition and its
                          complement, or a single row), and each stratum's sampled fraction (draws
                          without replacement). The stratified-sampling variance estimator
                          (Cochran, "Sampling Techniques", 1977, eq. 5.10) with collapsed strata where
                          a stratum holds one unit (Cochran 5A.12).
    ridge_stderr          LIME's weighted ridge: the heteroskedasticity-robust sandwich estimator of
                          the weighted least squares (White 1980; Eicker-Huber-White, HC1 scaling
                          n / (n - p)), rows or complementary pairs as units.
    shapley_stderr        Kernel SHAP's constrained weighted least squares: the delta-method
                          (sandwich) variance of Covert & Lee (AISTATS 2021, "Improving KernelSHAP",
                          sec. 4: the estimator is a smooth function of the sample means A_n, b_n,
                          asymptotically normal), with complementary pairs as the sampling unit
                          (paired sampling) and the design's strata and finite-population fractions;
                          each unit's residual divided by one minus its leverage (the jackknife's
                          small-sample correction, HC3: MacKinnon & White 1985; for clusters, here
                          pairs, Bell & McCaffrey 2002).
    bootstrap_stderr      any refit (the lasso): the standard deviation over B resamples of the rows
                          (Efron & Tibshirani 1993), pairs resampled together.
    mean_stderr           the standard error of a Monte Carlo mean from its running sums (RISE).

Enumerated rows (a whole stratum scored) carry no sampling variance: give them stratum -1.
"""

from __future__ import annotations

import numpy as np

from onnxai.errors import InputError
from onnxai.kernels.shapley import gram_determines


def _collapse(strata: np.ndarray, units: np.ndarray, fpc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge neighbouring strata until each holds >= 2 units -> (group of each stratum, fpc per group).

    strata: the sampled strata ids in increasing order; units: units per stratum; fpc: sampled fraction.
    A collapsed group keeps the smallest fraction (the larger, conservative variance)."""
    group = np.zeros(strata.shape[0], np.int64)
    g, count = 0, 0
    for i in range(strata.shape[0]):
        if count >= 2:
            g, count = g + 1, 0
        group[i] = g
        count += units[i]
    if count < 2 and g > 0:
        group[group == g] = g - 1
    ng = int(group.max()) + 1 if group.size else 0
    gf = np.array([fpc[group == j].min() for j in range(ng)]) if ng else np.zeros(0)
    return group, gf


def design_variance(t: np.ndarray, units: np.ndarray, strata: np.ndarray | None = None,
                    fraction: np.ndarray | None = None) -> np.ndarray:
    """Covariance of sum_i t_i under the design -> (k, k, C) (or (k, k) for t of shape (n, k)).

    t: (n, k) or (n, k, C) per-row contributions (weight included); units: (n,) int, rows of one unit
    (a complementary pair) share an id; strata: (n,) int, -1 = enumerated (no variance), default one
    stratum; fraction: per stratum id, the share of its units that was drawn (0 = with replacement).
    """
    t = np.asarray(t, np.float64)
    squeeze = t.ndim == 2
    if squeeze:
        t = t[:, :, None]
    n, k, C = t.shape
    units = np.asarray(units, np.int64)
    strata = np.zeros(n, np.int64) if strata is None else np.asarray(strata, np.int64)
    if units.shape != (n,) or strata.shape != (n,):
        raise InputError(f"units and strata need one entry per row ({n})")
    sampled = strata >= 0
    out = np.zeros((k, k, C))
    if not sampled.any():
        return out[:, :, 0] if squeeze else out
    # sum rows into units
    uid, inv = np.unique(units[sampled], return_inverse=True)
    ts = t[sampled]
    if uid.size == ts.shape[0]:  # one row a unit: a permutation (np.add.at cost ~2 ms a LIME row)
        tu = np.empty((uid.size, k, C))
        tu[inv] = ts
    else:  # rows of a unit added in row order into zeros, as np.add.at does: the same bits
        order = np.argsort(inv, kind="stable")
        first = np.r_[True, np.diff(inv[order]) != 0]
        rank = np.empty(inv.size, np.int64)  # each row's place within its unit (pairs: 0 and 1)
        rank[order] = np.arange(inv.size) - np.maximum.accumulate(np.where(first, np.arange(inv.size), 0))
        tu = np.zeros((uid.size, k, C))
        for r in range(int(rank.max()) + 1):
            sel = rank == r
            tu[inv[sel]] += ts[sel]
    ustrat = np.zeros(uid.size, np.int64)
    ustrat[inv] = strata[sampled]
    sid, scount = np.unique(ustrat, return_counts=True)
    frac = np.zeros(sid.size) if fraction is None else np.array([float(fraction.get(int(s), 0.0)) if isinstance(fraction, dict) else float(fraction[int(s)]) for s in sid])
    if uid.size < 2:
        return np.full((k, k) if squeeze else (k, k, C), np.nan)
    group, gfrac = _collapse(sid, scount, frac)
    ug = group[np.searchsorted(sid, ustrat)]
    for g in range(gfrac.size):
        sel = tu[ug == g]
        m = sel.shape[0]
        d = sel - sel.mean(axis=0, keepdims=True)
        out += np.einsum("uac,ubc->abc", d, d) * (m / (m - 1)) * (1.0 - gfrac[g])
    return out[:, :, 0] if squeeze else out


def ridge_stderr(X, y, w, coef, intercept, alpha: float, units=None) -> np.ndarray:
    """Sandwich standard errors of a weighted ridge fit with an intercept -> (k,) or (k, C).

    X: (n, k); y: (n,) or (n, C); w: (n,); coef: (k,) or (k, C); intercept: float or (C,).
    Var(b) = A^-1 [sum_u (sum_{i in u} w_i xc_i e_i)(...)^T] A^-1 * n_u / (n_u - k - 1),
    A = Xc' W Xc + alpha I, xc = x - mean_w(x), e = y - intercept - X b: robust to a surrogate that
    does not fit (LIME's usual case), which the textbook sigma^2 (X'WX)^-1 is not.
    """
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    one = y.ndim == 1
    Y = y[:, None] if one else y
    B = np.asarray(coef, np.float64).reshape(X.shape[1], -1)
    c = np.atleast_1d(np.asarray(intercept, np.float64))
    w = np.asarray(w, np.float64)
    n, k = X.shape
    xc = X - (w @ X) / w.sum()
    A = (xc * w[:, None]).T @ xc + alpha * np.eye(k)
    E = Y - c[None] - X @ B  # (n, C)
    t = (w[:, None] * xc)[:, :, None] * E[:, None, :]  # (n, k, C)
    units = np.arange(n) if units is None else np.asarray(units)
    nu = np.unique(units).size
    if nu <= k + 1:
        out = np.full((k, Y.shape[1]), np.nan)
        return out[:, 0] if one else out
    meat = design_variance(t, units) * (nu / (nu - k - 1)) * ((nu - 1) / nu)
    try:
        Ai = np.linalg.inv(A)
    except np.linalg.LinAlgError:
        out = np.full((k, Y.shape[1]), np.nan)
        return out[:, 0] if one else out
    var = np.einsum("ia,abc,ib->ic", Ai, meat, Ai)
    out = np.sqrt(np.maximum(var, 0.0))
    return out[:, 0] if one else out


def shapley_stderr(masks, weights, y, phi, units, strata=None, fraction=None, leverage: bool = True) -> np.ndarray:
    """Standard errors of Kernel SHAP's constrained WLS -> (M, C).

    masks: (n, M) 0/1; weights: (n,); y: (n, C) = f(coalition) - f(baseline); phi: (M, C) the solution;
    units / strata / fraction: the design (see ``design_variance``). With A = sum w z z^T and
    Q = A^-1 - A^-1 1 1^T A^-1 / (1^T A^-1 1) (the constraint's projection), phi - phi* ~ Q sum_i
    w_i z_i e_i, e_i = y_i - z_i.phi, so Var(phi) = Q Var(sum_u t_u) Q^T. The sum of phi has
    standard error 0 (Q 1 = 0): the efficiency constraint is exact.

    leverage (default): each unit's residuals are divided by 1 - h_u, h_u = sum over its rows of
    w_i z_i^T Q z_i (its leverage in the constrained fit; the leverages of all rows sum to M - 1). The
    fit pulls towards the rows it was fitted on, so their residuals understate the errors; with ~40
    features and a few hundred coalitions the uncorrected intervals held only 86-92% of the values
    (95% intended) on the shipped model's pictures, and 76% on an 8-feature game at 40 coalitions.
    For a coalition and its complement of equal weight, Q sees only the pair's odd residual, on which
    the pair's hat block acts as h_u, so the scalar is the exact delete-one-pair jackknife (CR3).
    leverage=False gives the plain (HC0) sandwich.

    NaN where the errors cannot be estimated: coalitions that do not determine phi (``determines``: the
    solution is then a minimum-norm choice, not an estimate), or, with leverage, a sampled unit the fit
    passes through (leverage 1: phi without it is not determined).
    """
    Z = np.asarray(masks, np.float64)
    w = np.asarray(weights, np.float64)
    Y = np.asarray(y, np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    P = np.asarray(phi, np.float64).reshape(Z.shape[1], -1)
    n, M = Z.shape
    A = (Z * w[:, None]).T @ Z
    if not gram_determines(A):
        return np.full((M, Y.shape[1]), np.nan)
    try:
        Ai = np.linalg.inv(A)
    except np.linalg.LinAlgError:
        return np.full((M, Y.shape[1]), np.nan)
    a1 = Ai.sum(axis=1)
    Q = Ai - np.outer(a1, a1) / a1.sum()
    E = Y - Z @ P
    if leverage:
        h = w * np.einsum("ia,ab,ib->i", Z, Q, Z)
        u = np.unique(np.asarray(units), return_inverse=True)[1]
        h_unit = np.bincount(u, h)[u]
        sampled = np.ones(n, np.bool_) if strata is None else np.asarray(strata) >= 0
        if (h_unit[sampled] > 1.0 - 1e-8).any():
            return np.full((M, Y.shape[1]), np.nan)
        E = E / np.maximum(1.0 - h_unit, 1e-8)[:, None]  # enumerated rows (no variance) may reach 1
    t = (w[:, None] * Z)[:, :, None] * E[:, None, :]
    meat = design_variance(t, units, strata, fraction)
    var = np.einsum("ia,abc,ib->ic", Q, meat, Q)
    return np.sqrt(np.maximum(var, 0.0))


def bootstrap_stderr(refit, n: int, units=None, B: int = 64, seed: int = 0) -> np.ndarray:
    """Standard deviation of ``refit(rows)`` over B resamples of the units (with replacement).

    refit: callable (row indices (m,) int64) -> estimate array; units: (n,) ids (rows of a unit are
    drawn together), default one unit per row. Seeded: the same seed, the same standard errors.
    """
    units = np.arange(n) if units is None else np.asarray(units)
    uid, inv = np.unique(units, return_inverse=True)
    members = [np.flatnonzero(inv == u) for u in range(uid.size)]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(int(B)):
        pick = rng.integers(0, uid.size, uid.size)
        draws.append(np.asarray(refit(np.concatenate([members[p] for p in pick]))))
    return np.std(np.stack(draws), axis=0, ddof=1)


def mean_stderr(s1: np.ndarray, s2: np.ndarray, n: int) -> np.ndarray:
    """Standard error of the mean of n draws from their sum s1 and sum of squares s2 (any shape)."""
    if n < 2:
        return np.full(np.shape(s1), np.nan)
    mean = s1 / n
    var = np.maximum(s2 / n - mean * mean, 0.0) * (n / (n - 1))
    return np.sqrt(var / n)
