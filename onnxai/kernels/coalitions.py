"""Kernel SHAP's coalition designs: which coalitions of M features are scored, with what weight.

    shapley_coalitions    the coalition design of Lundberg & Lee (2017): Shapley-kernel mass per
                          coalition size, whole sizes enumerated (each subset with its complement) while
                          the budget allows, the remaining sizes sampled in complementary pairs from a
                          seeded generator. sampling="stratified" (default) splits the leftover budget
                          over the remaining sizes in proportion to their mass and draws distinct subsets
                          within each; sampling="leverage" spreads it evenly over sizes instead
                          (Musco & Witter's leverage-score sampling, without replacement);
                          sampling="shap" is the shap package's design (random size per pair,
                          duplicates merged into weights)
    shapley_strata        the stratified plan: sizes enumerated whole, pairs and lone rows per size
    shapley_kernel_sizes  the per-size weights and how many sizes shap's rule enumerates (pure Python)
    default_nsamples      shap's "auto" budget

Coalitions are (n, M) uint8 rows, 1 = the feature takes the explained input's value, 0 = the
baseline's. The empty and the full coalition are never among them: they are the constraint of
``kernels.shapley.shapley_solve``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.typed import Dict

from onnxai.errors import InputError
from onnxai.kernels._checks import _check_positive_int, check_seed


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _enumerate_sizes(M, sizes, size_weights, paired, out, w_out):
    """All subsets of each size in ``sizes`` (with complements where ``paired``) -> rows written."""
    row = 0
    idx = np.empty(M, np.int64)
    for t in range(sizes.shape[0]):
        s = sizes[t]
        w = size_weights[t]
        for j in range(s):
            idx[j] = j
        while True:
            for j in range(M):
                out[row, j] = 0
            for j in range(s):
                out[row, idx[j]] = 1
            w_out[row] = w
            row += 1
            if paired[t]:
                for j in range(M):
                    out[row, j] = 1 - out[row - 1, j]
                w_out[row] = w
                row += 1
            # next combination in lexicographic order
            j = s - 1
            while j >= 0 and idx[j] == M - s + j:
                j -= 1
            if j < 0:
                break
            idx[j] += 1
            for q in range(j + 1, s):
                idx[q] = idx[q - 1] + 1
    return row


@njit(cache=True, nogil=True)
def _mask_hash(mask):
    h = np.uint64(14695981039346656037)
    for j in range(mask.shape[0]):
        h = (h ^ np.uint64(mask[j] + 1)) * np.uint64(1099511628211)
    return np.int64(h & np.uint64(0x7FFFFFFFFFFFFFFF))


@njit(cache=True, nogil=True)
def _same(a, b):
    for j in range(a.shape[0]):
        if a[j] != b[j]:
            return False
    return True


@njit(cache=True, nogil=True)
def _lookup(seen, rows, mask):
    """Open-addressing probe of ``seen`` (hash -> row of ``rows``): (free slot or match, row or -1)."""
    h = _mask_hash(mask)
    while h in seen:
        k = seen[h]
        if _same(rows[k], mask):
            return h, k
        h = (h + 1) & 0x7FFFFFFFFFFFFFFF
    return h, -1


@njit(cache=True, nogil=True)
def _shuffle_prefix(perm, s):
    """Partial Fisher-Yates with np.random: afterwards perm[:s] is a uniform random s-subset."""
    M = perm.shape[0]
    for j in range(s):
        r = j + int(np.random.random() * (M - j))
        if r >= M:
            r = M - 1
        t = perm[j]
        perm[j] = perm[r]
        perm[r] = t


@njit(cache=True, nogil=True)
def _sample_pairs(M, n_left, first_size, cdf, n_paired, seed, out, w_out):
    """Sample ``n_left`` coalitions of sizes first_size + i (i ~ cdf), each with its complement when its
    size is paired; repeats add 1 to the weight of the first copy. -> rows written."""
    np.random.seed(seed)
    seen = Dict.empty(key_type=types.int64, value_type=types.int64)
    perm = np.arange(M)
    row = 0
    attempts = 4 * n_left
    a = 0
    while row < n_left and a < attempts:
        a += 1
        u = np.random.random()
        i = 0
        while i < cdf.shape[0] - 1 and u > cdf[i]:
            i += 1
        s = first_size + i
        _shuffle_prefix(perm, s)
        for j in range(M):
            out[row, j] = 0
        for j in range(s):
            out[row, perm[j]] = 1
        h, found = _lookup(seen, out, out[row])
        if found >= 0:
            w_out[found] += 1.0
            if s <= n_paired and found + 1 < row:
                w_out[found + 1] += 1.0
            continue
        seen[h] = row
        w_out[row] = 1.0
        row += 1
        if row < n_left and s <= n_paired:
            for j in range(M):
                out[row, j] = 1 - out[row - 1, j]
            w_out[row] = 1.0
            row += 1
    return row


@njit(cache=True, nogil=True)
def _sample_strata(M, sizes, n_pairs, n_single, seed, out):
    """Distinct coalitions drawn uniformly within each size stratum, in complementary pairs.

    For stratum t (size s = sizes[t] <= M / 2): n_pairs[t] distinct pairs {S, complement of S} with
    |S| = s, then n_single[t] (0 or 1) further coalition alone (S or its complement, by a coin), all
    drawn without replacement: no pair repeats, so nothing is scored twice. When s == M - s a pair is one unordered {S, S^c} (the
    representative holding feature 0 decides "seen"). -> rows written.
    """
    np.random.seed(seed)
    perm = np.arange(M)
    rep = np.empty(M, np.uint8)
    row = 0
    for t in range(sizes.shape[0]):
        s = sizes[t]
        middle = 2 * s == M
        seen = Dict.empty(key_type=types.int64, value_type=types.int64)
        want = n_pairs[t] + n_single[t]
        got = 0
        while got < want:
            _shuffle_prefix(perm, s)
            for j in range(M):
                rep[j] = 0
            for j in range(s):
                rep[perm[j]] = 1
            if middle and rep[0] == 0:
                for j in range(M):
                    rep[j] = 1 - rep[j]
            h, found = _lookup(seen, out, rep)
            if found >= 0:
                continue
            seen[h] = row
            got += 1
            flip = got > n_pairs[t] and not middle and np.random.random() < 0.5  # a lone row: either side
            for j in range(M):
                out[row, j] = 1 - rep[j] if flip else rep[j]
            row += 1
            if got <= n_pairs[t]:
                for j in range(M):
                    out[row, j] = 1 - out[row - 1, j]
                row += 1
    return row


def default_nsamples(M: int) -> int:
    """shap's "auto" budget: 2M + 2048, at most every coalition but the empty and the full one."""
    n = 2 * M + 2048
    if M <= 30:
        n = min(n, 2 ** M - 2)
    return max(n, 0)


def shapley_kernel_sizes(M: int, nsamples: int) -> dict:
    """The size plan: per-size kernel weights, the sizes enumerated whole, and what is left to sample.

    weight of size s (before normalising) = (M - 1) / (s (M - s)), doubled for sizes that are paired
    with their complement size M - s (the complement is then not a size of its own).
    """
    n_sizes = int(math.ceil((M - 1) / 2.0))
    n_paired = int(math.floor((M - 1) / 2.0))
    wv = np.array([(M - 1.0) / (s * (M - s)) for s in range(1, n_sizes + 1)])
    wv[:n_paired] *= 2
    wv /= wv.sum() if wv.size else 1.0
    full, per_size_w, paired = [], [], []
    left = nsamples
    remaining = wv.copy()
    for s in range(1, n_sizes + 1):
        nsub = math.comb(M, s) * (2 if s <= n_paired else 1)
        if left * remaining[s - 1] / nsub >= 1.0 - 1e-8:
            full.append(s)
            left -= nsub
            if remaining[s - 1] < 1.0:
                remaining /= 1 - remaining[s - 1]
            w = wv[s - 1] / math.comb(M, s)
            if s <= n_paired:
                w /= 2.0
            per_size_w.append(w)
            paired.append(s <= n_paired)
        else:
            break
    return {"weights": wv, "n_sizes": n_sizes, "n_paired": n_paired, "full_sizes": full,
            "full_weights": per_size_w, "full_paired": paired, "left": max(int(left), 0)}


SAMPLING = ("stratified", "shap", "leverage")


def shapley_strata(M: int, nsamples: int, allocation: str = "kernel") -> dict:
    """The stratified plan: size strata enumerated whole, and pairs / lone rows drawn in each other one.

    A stratum is a size s <= M / 2 together with its complement size M - s; its mass is its share of
    the Shapley kernel (``shapley_kernel_sizes``'s weights). The budget is spread over the strata in
    proportion to their share (allocation="kernel": the mass; "leverage": the number of sizes in the
    stratum, 2, or 1 for s = M / 2, so every size gets as many rows); a stratum whose share covers all
    its coalitions is enumerated whole and the rest is spread again, until none fits. What is left
    goes to the other strata as complementary pairs, in proportion to share with largest-remainder
    rounding; an odd budget leaves one lone row, which goes to the stratum with the largest remainder
    after that. The rows' weights always come from the mass ("weights"), whatever the allocation.
    """
    plan = shapley_kernel_sizes(M, 0)
    wv, n_sizes = plan["weights"], plan["n_sizes"]
    sizes = np.arange(1, n_sizes + 1)
    # coalitions per stratum (capped far above any budget, so huge M stays finite)
    count = np.array([float(min(math.comb(M, s), 2 ** 62) * (1 if 2 * s == M else 2)) for s in sizes])
    if allocation not in ("kernel", "leverage"):
        raise InputError(f"allocation must be 'kernel' or 'leverage'; got {allocation!r}")
    share = wv if allocation == "kernel" else np.where(2 * sizes == M, 1.0, 2.0)
    full = np.zeros(n_sizes, np.bool_)
    left = int(nsamples)
    while True:
        rest = ~full
        mass = share[rest].sum()
        if not rest.any() or mass <= 0:
            break
        fits = rest & (left * share / mass >= count - 1e-8)
        if not fits.any():
            break
        full |= fits
        left -= int(count[fits].sum())
    pairs = np.zeros(n_sizes, np.int64)
    single = np.zeros(n_sizes, np.int64)
    rest = np.flatnonzero(~full)
    if rest.size and left > 0:
        quota = (left // 2) * share[rest] / share[rest].sum()
        cap = np.minimum(count[rest] // 2, 2.0 ** 62).astype(np.int64)
        got = np.minimum(np.floor(quota).astype(np.int64), cap)
        for i in np.argsort(-(quota - got), kind="stable")[: left // 2 - int(got.sum())]:
            if got[i] < cap[i]:
                got[i] += 1
        pairs[rest] = got
        if left % 2:
            room = got < cap
            if room.any():
                gap = np.where(room, quota - got, -np.inf)
                single[rest[int(np.argmax(gap))]] = 1
    return {"weights": wv, "sizes": sizes, "count": count, "full": full, "pairs": pairs, "single": single}


def shapley_coalitions(M, nsamples=None, seed=0, sampling="stratified") -> tuple[np.ndarray, np.ndarray]:
    """Kernel SHAP's coalitions -> (masks (n, M) uint8, weights (n,) float64 summing to 1).

    nsamples: the budget (None = shap's "auto", 2M + 2048); never more than 2^M - 2 rows come back.
    sampling: how the coalitions not enumerated are chosen (all keep the Shapley kernel's mass per
    size, complementary pairs, and enumerate whole sizes while the budget allows):
        "stratified"  the budget left after enumeration is split over the remaining sizes in
                      proportion to their kernel mass (largest-remainder rounding, in pairs); within
                      a size, distinct subsets drawn uniformly without replacement, each with its
                      complement; each row weighs (mass of its size) / (rows drawn at that size).
                      Exactly min(nsamples, 2^M - 2) rows. Lower variance than "shap" at equal budget.
        "leverage"    Leverage SHAP (Musco & Witter, ICLR 2025, "Provably accurate Shapley value
                      estimation via leverage score sampling"): once the efficiency constraint is
                      projected out, a row's leverage score depends on its size only, as 1 / C(M, s),
                      so sampling by leverage makes every size 1..M-1 equally likely. Here: the
                      "stratified" design with the budget spread evenly over sizes (a stratum s, M - s
                      gets two sizes' share, s = M / 2 one) instead of by kernel mass, strata that
                      fit enumerated whole, distinct complementary pairs drawn uniformly within a
                      size, and the same weights (mass of the size) / (rows drawn at it): their
                      kernel weight over their inclusion probability, so the regression targets the
                      same Shapley values (the without-replacement form of their importance weights).
        "shap"        the shap package's KernelExplainer design: each pair's size drawn at random from
                      the remaining kernel mass, repeats merged into weights (so possibly fewer rows),
                      the sampled weights renormalised to the remaining mass.
    The same (M, nsamples, seed, sampling) gives the same rows, bit for bit.
    """
    M = _check_positive_int(M, "M")
    if nsamples is None:
        nsamples = default_nsamples(M)
    nsamples = _check_positive_int(nsamples, "nsamples", minimum=0)
    check_seed(seed)
    if sampling not in SAMPLING:
        raise InputError(f"sampling must be one of {SAMPLING}; got {sampling!r}")
    if M < 2:
        return np.zeros((0, M), np.uint8), np.zeros(0)
    if M <= 62:
        nsamples = min(nsamples, 2 ** M - 2)
    if sampling == "shap":
        return _shap_coalitions(M, nsamples, seed)
    plan = shapley_strata(M, nsamples, "leverage" if sampling == "leverage" else "kernel")
    wv, sizes, count = plan["weights"], plan["sizes"], plan["count"]
    full = np.flatnonzero(plan["full"])
    drawn = 2 * plan["pairs"] + plan["single"]
    n_full = int(round(count[full].sum()))
    n_drawn = int(drawn.sum())
    masks = np.zeros((n_full + n_drawn, M), np.uint8)
    weights = np.zeros(n_full + n_drawn)
    if full.size:
        _enumerate_sizes(M, sizes[full].astype(np.int64), wv[full] / count[full],
                         np.asarray(2 * sizes[full] != M, np.bool_), masks, weights)
    if n_drawn:
        some = np.flatnonzero(drawn)
        rows = _sample_strata(M, sizes[some].astype(np.int64), plan["pairs"][some], plan["single"][some],
                              int(seed) % (2 ** 32), masks[n_full:])
        assert rows == n_drawn
        weights[n_full:] = np.repeat(wv[some] / drawn[some], drawn[some])
        # strata the budget could not reach (tiny budgets) hand their mass to the ones it did reach
        wl = wv[~plan["full"]].sum()
        weights[n_full:] *= wl / weights[n_full:].sum()
    elif 0 < weights.sum() < 1.0 - 1e-12:  # the budget ran out right after the enumerated sizes
        weights /= weights.sum()
    return masks, weights


def _shap_coalitions(M, nsamples, seed) -> tuple[np.ndarray, np.ndarray]:
    """sampling="shap": the shap package's KernelExplainer design (see shapley_coalitions)."""
    plan = shapley_kernel_sizes(M, nsamples)
    n_full = sum(math.comb(M, s) * (2 if p else 1) for s, p in zip(plan["full_sizes"], plan["full_paired"]))
    n_full = min(n_full, nsamples) if plan["full_sizes"] else 0
    left = nsamples - n_full if len(plan["full_sizes"]) != plan["n_sizes"] else 0
    masks = np.zeros((n_full + left, M), np.uint8)
    weights = np.zeros(n_full + left)
    if plan["full_sizes"]:
        _enumerate_sizes(M, np.asarray(plan["full_sizes"], np.int64), np.asarray(plan["full_weights"], np.float64),
                         np.asarray(plan["full_paired"], np.bool_), masks, weights)
    rows = n_full
    if left > 0:
        nf = len(plan["full_sizes"])
        rw = plan["weights"].copy()
        rw[: plan["n_paired"]] /= 2
        rw = rw[nf:]
        rw /= rw.sum()
        cdf = np.cumsum(rw)
        cdf[-1] = 1.0
        got = _sample_pairs(M, left, nf + 1, cdf, plan["n_paired"], int(seed) % (2 ** 32),
                            masks[n_full:], weights[n_full:])
        rows = n_full + got
        wl = plan["weights"][nf:].sum()
        sw = weights[n_full:rows].sum()
        if sw > 0:
            weights[n_full:rows] *= wl / sw
    return masks[:rows], weights[:rows]


def sequential_coalitions(M: int, n: int, seed=0) -> dict:
    """A design every prefix of which is a Kernel SHAP design (for num_samples="auto"): the sizes 1
    and M - 1 enumerated first (2M rows, each subset with its complement), then independent
    complementary pairs (Covert & Lee 2021's paired sampling), each pair's size drawn from the
    remaining Shapley-kernel mass and its subset uniformly within the size.

    -> {"masks": (n', M) uint8 with n' = min(n, ...) rows, "enumerated": rows enumerated first,
    "mass": the kernel mass of the enumerated sizes}. ``sequential_weights`` gives the weights of any
    prefix of whole pairs.
    """
    M = _check_positive_int(M, "M")
    n = _check_positive_int(n, "n", minimum=0)
    plan = shapley_strata(M, 0)
    wv = plan["weights"]  # per stratum (size s and M - s together)
    first = 2 * M if M > 2 else 0
    enum = np.zeros((first, M), np.uint8)
    if first:
        eye = np.eye(M, dtype=np.uint8)
        enum[0::2], enum[1::2] = eye, 1 - eye
    mass = float(wv[0]) if first else 0.0
    rest = wv[1:] if first else wv
    sizes = np.arange(2 if first else 1, 2 + rest.size - (0 if first else 1))
    pairs = max(0, (n - first + 1) // 2)
    rng = np.random.default_rng(check_seed(seed))
    out = np.zeros((first + 2 * pairs, M), np.uint8)
    out[:first] = enum
    if pairs and rest.size and rest.sum() > 0:
        s = rng.choice(sizes, size=pairs, p=rest / rest.sum())
        order = np.argsort(rng.random((pairs, M)), axis=1)
        pos = np.empty_like(order)
        np.put_along_axis(pos, order, np.arange(M)[None].repeat(pairs, 0), axis=1)
        pick = (pos < s[:, None]).astype(np.uint8)
        out[first::2], out[first + 1::2] = pick, 1 - pick
    return {"masks": out[:max(n, first) if n >= first else first], "enumerated": first, "mass": mass}


def sequential_weights(design: dict, rows: int) -> np.ndarray:
    """Weights (rows,) summing to 1 of the first ``rows`` rows of a ``sequential_coalitions`` design
    (rows past the enumerated ones in whole pairs): enumerated rows share their sizes' mass, sampled
    rows share the rest equally."""
    e = design["enumerated"]
    w = np.zeros(rows)
    if e:
        w[:e] = design["mass"] / e
    if rows > e:
        w[e:] = (1.0 - design["mass"]) / (rows - e)
    elif e:
        w[:e] = 1.0 / e
    return w
