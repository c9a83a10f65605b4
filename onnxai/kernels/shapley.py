"""Kernel SHAP's least squares: min_phi sum_i w_i (y_i - z_i.phi)^2 subject to sum(phi) = f(x) - f(baseline),
for all classes at once; the constraint is exact (one variable is eliminated). The coalitions come
from ``kernels.coalitions``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from onnxai.errors import InputError
from onnxai.kernels._checks import _as_float64, _check_array


@njit(cache=True, nogil=True)
def _solve(masks, weights, y, delta, out):
    """Constrained WLS for every column of y. masks (n, M) uint8, weights (n,), y (n, C), delta (C,).

    phi_M = delta - sum_{j<M} phi_j; then min sum_i w_i (y_i - z_iM delta - sum_j (z_ij - z_iM) phi_j)^2
    by its normal equations (Cholesky, falling back to Gaussian elimination with partial pivoting).
    Returns False when the system is singular.
    """
    n, M = masks.shape
    C = y.shape[1]
    k = M - 1
    if k == 0:
        for c in range(C):
            out[0, c] = delta[c]
        return True
    gram = np.zeros((k, k))
    rhs = np.zeros((k, C))
    e = np.empty(k)
    for i in range(n):
        w = weights[i]
        if w == 0.0:
            continue
        last = float(masks[i, k])
        for j in range(k):
            e[j] = float(masks[i, j]) - last
        for a in range(k):
            if e[a] == 0.0:
                continue
            wa = w * e[a]
            for b in range(a + 1):
                gram[a, b] += wa * e[b]
            for c in range(C):
                rhs[a, c] += wa * (y[i, c] - last * delta[c])
    for a in range(k):
        for b in range(a):
            gram[b, a] = gram[a, b]
    # Gaussian elimination with partial pivoting on [gram | rhs]
    A = gram.copy()
    B = rhs.copy()
    scale = 0.0
    for a in range(k):
        scale = max(scale, abs(A[a, a]))
    if scale == 0.0:
        return False
    for col in range(k):
        p = col
        best = abs(A[col, col])
        for r in range(col + 1, k):
            if abs(A[r, col]) > best:
                best = abs(A[r, col])
                p = r
        if best <= 1e-13 * scale:
            return False
        if p != col:
            for q in range(k):
                t = A[col, q]
                A[col, q] = A[p, q]
                A[p, q] = t
            for c in range(C):
                t = B[col, c]
                B[col, c] = B[p, c]
                B[p, c] = t
        piv = A[col, col]
        for r in range(col + 1, k):
            f = A[r, col] / piv
            if f == 0.0:
                continue
            for q in range(col, k):
                A[r, q] -= f * A[col, q]
            for c in range(C):
                B[r, c] -= f * B[col, c]
    for c in range(C):
        s_total = 0.0
        for r in range(k - 1, -1, -1):
            s = B[r, c]
            for q in range(r + 1, k):
                s -= A[r, q] * out[q, c]
            out[r, c] = s / A[r, r]
            s_total += out[r, c]
        out[k, c] = delta[c] - s_total
    return True


# --------------------------------------------------------------------------------------------
# wrappers
# --------------------------------------------------------------------------------------------


def shapley_solve(masks, weights, y, delta) -> np.ndarray:
    """Shapley values from scored coalitions -> phi (M, C) float64 with sum(phi[:, c]) == delta[c].

    masks: (n, M) 0/1; weights: (n,) >= 0; y: (n, C) = f(coalition) - f(baseline); delta: (C,) =
    f(x) - f(baseline). Where the coalitions do not determine phi (fewer than M - 1 independent ones;
    ``determines`` tells), the minimum-norm solution of the eliminated problem. Raises InputError on
    arrays of the wrong shapes.
    """
    masks = _check_array(masks, "masks", 2, "(n, M)")
    if masks.dtype == np.bool_:
        masks = masks.view(np.uint8)
    masks = np.ascontiguousarray(masks, dtype=np.uint8)
    weights = _as_float64(_check_array(weights, "weights", 1, "(n,)"), "weights")
    y = np.asarray(y, np.float64)
    if y.ndim == 1:
        y = y[:, None]
    y = np.ascontiguousarray(_check_array(y, "y", 2, "(n, C)"))
    delta = np.atleast_1d(np.asarray(delta, np.float64))
    n, M = masks.shape
    if weights.shape[0] != n or y.shape[0] != n:
        raise InputError(f"masks ({n} rows), weights ({weights.shape[0]}) and y ({y.shape[0]}) must have the same rows")
    if delta.shape[0] != y.shape[1]:
        raise InputError(f"delta has {delta.shape[0]} values but y has {y.shape[1]} columns")
    if M == 0:
        return np.zeros((0, y.shape[1]))
    out = np.zeros((M, y.shape[1]))
    ok = _solve(masks, np.ascontiguousarray(weights), y, delta, out)
    if not ok:
        # rank-deficient design: the minimum-norm solution of the eliminated problem
        e = masks[:, :-1].astype(np.float64) - masks[:, -1:].astype(np.float64)
        sw = np.sqrt(weights)[:, None]
        rhs = y - masks[:, -1:].astype(np.float64) * delta[None, :]
        if e.shape[1]:
            sol = np.linalg.lstsq(sw * e, sw * rhs, rcond=None)[0]
        else:
            sol = np.zeros((0, y.shape[1]))
        out[:-1] = sol
        out[-1] = delta - sol.sum(axis=0)
    return out


def determines(masks, weights, rtol: float = 1e-10) -> bool:
    """Do the coalitions (n, M) with weights (n,) determine phi? (``gram_determines`` of their A.)"""
    Z = np.asarray(masks, np.float64)
    n, M = Z.shape
    if M >= 2 and n < M - 1:
        return False
    return gram_determines((Z * np.maximum(np.asarray(weights, np.float64), 0.0)[:, None]).T @ Z, rtol)


def gram_determines(A, rtol: float = 1e-10) -> bool:
    """Does A = sum_i w_i z_i z_i^T (M, M) determine phi? The constrained problem eliminates one variable;
    phi is unique when the weighted Gram matrix of its M - 1 columns z_j - z_M, N^T A N with
    N = [I; -1^T], is nonsingular: its smallest eigenvalue above rtol x the largest."""
    A = np.asarray(A, np.float64)
    if A.shape[0] < 2:
        return True
    gram = A[:-1, :-1] - A[:-1, -1:] - A[-1:, :-1] + A[-1, -1]
    ev = np.linalg.eigvalsh(gram)
    return bool(ev[-1] > 0 and ev[0] > rtol * ev[-1])
