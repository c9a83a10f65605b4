"""Weighted linear surrogates and LIME's sample weights.

    weighted_ridge       min_b  sum_i w_i (y_i - c - x_i.b)^2 + alpha |b|^2
                         (= sklearn Ridge(alpha).fit(X, y, sample_weight=w); weights are not rescaled)
    weighted_lasso       min_b  1/(2n) sum_i v_i (y_i - c - x_i.b)^2 + alpha |b|_1,  v = w * n / sum(w)
                         (= sklearn Lasso(alpha).fit(X, y, sample_weight=w), which rescales w that way)
    weighted_r2          1 - sum w (y - pred)^2 / sum w (y - mean_w(y))^2   (= sklearn r2_score)
    lime_kernel_weights  sqrt(exp(-d^2 / width^2)), d = cosine distance of each mask to the all-ones row

With ``fit_intercept`` the intercept c is not penalised: X and y are centred on their w-weighted
means, the penalised problem is solved on the centred data, and c = mean_w(y) - mean_w(X).b.
Ridge solves its normal equations (Xc' W Xc + alpha I) b = Xc' W yc with a Cholesky factorisation;
lasso runs cyclic coordinate descent stopped by the duality gap, as scikit-learn does.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit

from onnxai.errors import InputError
from onnxai.kernels._checks import _as_float64, _check_array, _check_positive_int


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _weighted_means(X, y, w, fit_intercept):
    # X: (n, k), y, w: (n,) -> x_mean (k,), y_mean; zeros without an intercept
    n, k = X.shape
    x_mean = np.zeros(k)
    y_mean = 0.0
    if fit_intercept:
        total = 0.0
        for i in range(n):
            total += w[i]
            y_mean += w[i] * y[i]
            for j in range(k):
                x_mean[j] += w[i] * X[i, j]
        y_mean /= total
        for j in range(k):
            x_mean[j] /= total
    return x_mean, y_mean


@njit(cache=True, nogil=True)
def _ridge_normal_equations(X, y, w, alpha, x_mean, y_mean):
    # -> gram (k, k) = Xc' W Xc + alpha I, rhs (k,) = Xc' W yc
    n, k = X.shape
    gram = np.zeros((k, k))
    rhs = np.zeros(k)
    xc = np.empty(k)
    for i in range(n):
        wi = w[i]
        for j in range(k):
            xc[j] = X[i, j] - x_mean[j]
        yc = y[i] - y_mean
        for a in range(k):
            wa = wi * xc[a]
            rhs[a] += wa * yc
            for b in range(a, k):
                gram[a, b] += wa * xc[b]
    for a in range(k):
        gram[a, a] += alpha
        for b in range(a):
            gram[a, b] = gram[b, a]
    return gram, rhs


@njit(cache=True, nogil=True)
def _cholesky_solve(gram, rhs):
    """Solve gram @ x = rhs for symmetric positive definite gram -> (x (k,), ok)."""
    k = gram.shape[0]
    L = np.zeros((k, k))
    for j in range(k):
        d = gram[j, j]
        for p in range(j):
            d -= L[j, p] * L[j, p]
        if not d > 1e-300:  # also catches NaN: not positive definite
            return np.zeros(k), False
        L[j, j] = math.sqrt(d)
        for i in range(j + 1, k):
            s = gram[i, j]
            for p in range(j):
                s -= L[i, p] * L[j, p]
            L[i, j] = s / L[j, j]
    z = np.empty(k)  # L z = rhs
    for i in range(k):
        s = rhs[i]
        for p in range(i):
            s -= L[i, p] * z[p]
        z[i] = s / L[i, i]
    x = np.empty(k)  # L' x = z
    for i in range(k - 1, -1, -1):
        s = z[i]
        for p in range(i + 1, k):
            s -= L[p, i] * x[p]
        x[i] = s / L[i, i]
    return x, True


@njit(cache=True, nogil=True)
def _lasso_cd(X, y, w, alpha, x_mean, y_mean, max_iter, tol):
    """Cyclic coordinate descent on the centred, sqrt(v)-scaled problem -> (coef (k,), n_iter, gap)."""
    n, k = X.shape
    total = 0.0
    for i in range(n):
        total += w[i]
    # Xt: (k, n) columns of sqrt(v) * (X - x_mean), contiguous for the inner products
    Xt = np.empty((k, n))
    yt = np.empty(n)
    for i in range(n):
        root = math.sqrt(w[i] * n / total)
        yt[i] = root * (y[i] - y_mean)
        for j in range(k):
            Xt[j, i] = root * (X[i, j] - x_mean[j])
    l1 = alpha * n
    norms = np.zeros(k)
    for j in range(k):
        for i in range(n):
            norms[j] += Xt[j, i] * Xt[j, i]
    yy = 0.0
    for i in range(n):
        yy += yt[i] * yt[i]
    gap_tol = tol * yy
    coef = np.zeros(k)
    R = yt.copy()  # residual yt - Xt' coef
    gap = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        max_coef = 0.0
        max_step = 0.0
        for j in range(k):
            if norms[j] == 0.0:
                continue
            old = coef[j]
            dot = 0.0
            for i in range(n):
                dot += Xt[j, i] * R[i]
            dot += norms[j] * old  # correlation with the residual that excludes feature j
            new = 0.0
            if dot > l1:
                new = (dot - l1) / norms[j]
            elif dot < -l1:
                new = (dot + l1) / norms[j]
            step = new - old
            if step != 0.0:
                for i in range(n):
                    R[i] -= step * Xt[j, i]
                coef[j] = new
            max_step = max(max_step, abs(step))
            max_coef = max(max_coef, abs(new))
        if max_coef == 0.0 or max_step / max_coef < tol or it == max_iter:
            # duality gap of 0.5 |R|^2 + l1 |coef|_1 with the dual point scale * R
            dual_norm = 0.0
            for j in range(k):
                c = 0.0
                for i in range(n):
                    c += Xt[j, i] * R[i]
                dual_norm = max(dual_norm, abs(c))
            r2 = 0.0
            ry = 0.0
            for i in range(n):
                r2 += R[i] * R[i]
                ry += R[i] * yt[i]
            scale = 1.0
            if dual_norm > l1:
                scale = l1 / dual_norm
            l1_norm = 0.0
            for j in range(k):
                l1_norm += abs(coef[j])
            gap = 0.5 * r2 * (1.0 + scale * scale) + l1 * l1_norm - scale * ry
            if gap <= gap_tol:
                break
    return coef, it, gap


@njit(cache=True, nogil=True)
def _weighted_r2(X, y, w, coef, intercept):
    n, k = X.shape
    total = 0.0
    y_mean = 0.0
    for i in range(n):
        total += w[i]
        y_mean += w[i] * y[i]
    y_mean /= total
    num = 0.0
    den = 0.0
    for i in range(n):
        pred = intercept
        for j in range(k):
            pred += X[i, j] * coef[j]
        num += w[i] * (y[i] - pred) ** 2
        den += w[i] * (y[i] - y_mean) ** 2
    if den == 0.0:
        return 1.0 if num == 0.0 else 0.0
    return 1.0 - num / den


@njit(cache=True, nogil=True)
def _lime_kernel_weights(masks, kernel_width):
    # masks: (n, k) -> (n,) float64
    n, k = masks.shape
    out = np.empty(n)
    root_k = math.sqrt(k)
    for i in range(n):
        s = 0.0
        q = 0.0
        for j in range(k):
            m = float(masks[i, j])
            s += m
            q += m * m
        if q == 0.0:
            d = 1.0
        else:
            d = 1.0 - s / (math.sqrt(q) * root_k)
            d = min(max(d, 0.0), 2.0)
        out[i] = math.sqrt(math.exp(-(d * d) / (kernel_width * kernel_width)))
    return out


# --------------------------------------------------------------------------------------------
# wrappers
# --------------------------------------------------------------------------------------------


def _problem(X, y, w):
    X = _as_float64(_check_array(X, "X", 2, "(n, k)"), "X")
    n = X.shape[0]
    y = _as_float64(_check_array(y, "y", 1, "(n,)"), "y")
    if y.shape[0] != n:
        raise InputError(f"y has {y.shape[0]} values but X has {n} rows; pass one target per sample")
    if w is None:
        w = np.ones(n)
    w = _as_float64(_check_array(w, "w", 1, "(n,)"), "w")
    if w.shape[0] != n:
        raise InputError(f"w has {w.shape[0]} values but X has {n} rows; pass one weight per sample")
    if n == 0 or X.shape[1] == 0:
        raise InputError(f"X of shape {X.shape} is empty; a surrogate needs at least one sample and one feature")
    if not (np.isfinite(X).all() and np.isfinite(y).all() and np.isfinite(w).all()):
        raise InputError("X, y and w must be finite; check the model scores for NaN/inf")
    if (w < 0).any() or not w.sum() > 0:
        raise InputError("sample weights must be >= 0 with a positive sum")
    return X, y, w


def _check_alpha(alpha) -> float:
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real) or not alpha >= 0:
        raise InputError(f"alpha must be a number >= 0; got {alpha!r}")
    return float(alpha)


def weighted_ridge(X, y, w=None, alpha=1.0, fit_intercept=True) -> tuple[np.ndarray, float]:
    """Weighted ridge regression -> (coef (k,) float64, intercept float).

    X: (n, k), y: (n,), w: (n,) non-negative sample weights (None = all ones).  Equals
    ``sklearn.linear_model.Ridge(alpha=alpha, fit_intercept=...).fit(X, y, sample_weight=w)``.
    If the system is singular (only possible with alpha=0) the minimum-norm solution is returned.
    """
    X, y, w = _problem(X, y, w)
    alpha = _check_alpha(alpha)
    x_mean, y_mean = _weighted_means(X, y, w, bool(fit_intercept))
    gram, rhs = _ridge_normal_equations(X, y, w, alpha, x_mean, y_mean)
    coef, ok = _cholesky_solve(gram, rhs)
    if not ok:
        coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    intercept = float(y_mean - x_mean @ coef) if fit_intercept else 0.0
    return coef, intercept


def weighted_lasso(X, y, w=None, alpha=1.0, fit_intercept=True, max_iter=1000, tol=1e-4) -> tuple[np.ndarray, float]:
    """Weighted lasso by coordinate descent -> (coef (k,) float64, intercept float).

    Minimises (1 / (2 n)) sum_i v_i (y_i - c - x_i.b)^2 + alpha |b|_1 with v = w * n / sum(w), the
    objective of ``sklearn.linear_model.Lasso(alpha=alpha).fit(X, y, sample_weight=w)``.  Stops when
    the largest coefficient step is below ``tol`` relative to the largest coefficient and the duality
    gap is below ``tol * |sqrt(v) yc|^2`` (scikit-learn's criterion), or after ``max_iter`` sweeps.
    """
    X, y, w = _problem(X, y, w)
    alpha = _check_alpha(alpha)
    max_iter = _check_positive_int(max_iter, "max_iter")
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise InputError(f"tol must be a number >= 0; got {tol!r}")
    x_mean, y_mean = _weighted_means(X, y, w, bool(fit_intercept))
    coef, _, _ = _lasso_cd(X, y, w, alpha, x_mean, y_mean, max_iter, float(tol))
    intercept = float(y_mean - x_mean @ coef) if fit_intercept else 0.0
    return coef, intercept


def weighted_r2(X, y, w, coef, intercept) -> float:
    """Weighted coefficient of determination of the linear model (coef, intercept) on (X, y).

    Equals ``sklearn.metrics.r2_score(y, X @ coef + intercept, sample_weight=w)``, including its
    convention for constant y: 1.0 for a perfect fit, else 0.0.
    """
    X, y, w = _problem(X, y, w)
    coef = _as_float64(_check_array(coef, "coef", 1, "(k,)"), "coef")
    if coef.shape[0] != X.shape[1]:
        raise InputError(f"coef has {coef.shape[0]} values but X has {X.shape[1]} columns")
    return float(_weighted_r2(X, y, w, coef, float(intercept)))


def lime_kernel_weights(masks, kernel_width=0.25) -> np.ndarray:
    """LIME image explainer's sample weights: (n, k) masks -> (n,) float64.

    d_i = 1 - cos(m_i, 1) = 1 - sum(m_i) / (|m_i| sqrt(k)) (clipped to [0, 2]; d = 1 for an all-zero
    row, as scikit-learn's cosine distance gives) and weight_i = sqrt(exp(-d_i^2 / kernel_width^2)).
    This is lime 0.2.0.1's ``LimeImageExplainer``: ``pairwise_distances(data, data[0], metric='cosine')``
    against sample 0, which is the all-ones row, without any extra scaling of d, fed to its default
    kernel ``sqrt(exp(-d**2 / width**2))`` with width 0.25.
    """
    masks = _check_array(masks, "masks", 2, "(n, k)")
    if masks.dtype == np.bool_:
        masks = masks.view(np.uint8)
    elif not np.issubdtype(masks.dtype, np.number):
        raise InputError(f"masks must be numeric (uint8 or float); got dtype {masks.dtype}")
    if masks.shape[1] == 0:
        raise InputError("masks have no columns; there must be at least one feature")
    if isinstance(kernel_width, (bool, np.bool_)) or not isinstance(kernel_width, numbers.Real) or not kernel_width > 0:
        raise InputError(f"kernel_width must be a number > 0; got {kernel_width!r}")
    return _lime_kernel_weights(masks, float(kernel_width))
