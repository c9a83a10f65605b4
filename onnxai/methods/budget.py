"""The sample budget of the sampled methods: a number of samples, or num_samples="auto" and its rules.

    check_budget / check_count   one message for every bad budget
    converged                    the error rule (tables): every stderr below tolerance x max |value|
    below_floor                  the rank rule's error floor: every stderr below a share of the values' spread
    rank_correlation             Spearman's correlation of two maps, features weighted by their pixels
    predicted_agreement          split-half reliability (Spearman-Brown)
    QUARTER_GROUPS, quarter_of, split_agreements, rank_exponent, predicted_disagreement
                                 the rank rule's figure: Spearman-Brown with the exponent read from quarters

``Method.auto_check`` (methods.base) applies them between the engine's chunks.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..kernels._checks import _check_positive_int, check_number, check_seed  # noqa: F401  (methods' checks)

AUTO_FIRST = 100  # samples before the first convergence check of num_samples="auto"
AUTO_TOLERANCE = 0.1  # error rule (tables): stop when every standard error is below this share of the largest |value|
AUTO_RANK_TOLERANCE = 0.05  # rank rule (pictures): stop when the predicted rank correlation reaches 1 - this (0.95)
AUTO_ERROR_FLOOR = 0.05  # the rank rule also stops once every stderr is below this share of the values' spread
                         # (``below_floor``): features with no effect at all (ties) never settle into a ranking
AUTO_MAX_SAMPLES = 10000
AUTO_STEP = 1.05  # checks at least 5% of the samples apart (then at the next chunk's end)


def check_budget(num_samples, tolerance, max_samples, minimum: int = 1, allow_none: bool = False,
                 first: int = AUTO_FIRST, unit: str = "samples"):
    """-> (num_samples, tolerance, max_samples) checked: num_samples an integer >= minimum or "auto";
    with "auto", max_samples at least ``first`` (the first convergence check)."""
    if tolerance is not None and (isinstance(tolerance, bool)
                                  or not isinstance(tolerance, (int, float, np.integer, np.floating))
                                  or not np.isfinite(tolerance) or tolerance <= 0):
        raise InputError(f"tolerance must be a number > 0 (pictures: the rank disagreement accepted, e.g. 0.05; "
                         f"tables: the largest standard error as a share of the largest |value|, e.g. 0.1); "
                         f"got {tolerance!r}")
    tolerance = None if tolerance is None else float(tolerance)
    if isinstance(num_samples, str) and num_samples.strip().lower() == "auto":
        if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < first:
            raise InputError(f"max_samples must be an integer >= {first} (the first convergence check comes "
                             f"after {first} {unit}); got {max_samples!r}")
        return "auto", tolerance, int(max_samples)
    if num_samples is None and allow_none:
        return None, tolerance, max_samples
    if isinstance(num_samples, str):
        raise InputError(f"num_samples is a whole number or 'auto', not {num_samples!r}")
    return check_count(num_samples, "num_samples", minimum), tolerance, max_samples


def converged(values, stderr, tolerance: float) -> tuple[bool, float]:
    """(every target settled, the worst ratio): max stderr <= tolerance * max |value| for each target.
    values, stderr: lists of per-target arrays."""
    worst = 0.0
    for v, se in zip(values, stderr):
        scale = float(np.max(np.abs(v))) if np.size(v) else 0.0
        top = float(np.max(se)) if np.size(se) else 0.0
        if not np.isfinite(top):
            return False, float("inf")
        worst = max(worst, top / scale if scale > 0 else (0.0 if top == 0 else float("inf")))
    return worst <= tolerance, worst


def below_floor(values, stderr, floor: float, weights=None) -> bool:
    """The rank rule's error floor: for every target, every standard error at most ``floor`` x the
    standard deviation of its values (features weighted by ``weights``, their pixels, as the painted
    map counts them). Measured against the spread, not the largest |value|: one dominant feature
    (a heavy-tailed map) would otherwise let the floor stop while the rest is still unordered, as it
    did on the benchmark's rocket picture (6 of 10 LIME runs stopped on a floor of 0.03 x the largest
    |value| with a predicted rank disagreement of 0.06-0.15)."""
    for v, se in zip(values, stderr):
        v, se = np.ravel(np.asarray(v, np.float64)), np.ravel(np.asarray(se, np.float64))
        if not np.all(np.isfinite(se)):
            return False
        w = np.ones(v.size) if weights is None else np.ravel(np.asarray(weights, np.float64))
        w = w / w.sum()
        spread = float(np.sqrt(w @ (v - w @ v) ** 2))
        if se.size and float(np.max(se)) > floor * spread:
            return False
    return True


def rank_correlation(a, b, weights=None) -> float:
    """Spearman's correlation of two maps given per feature, each feature counted ``weights`` times
    (its superpixel's pixels: the correlation of the painted pixel maps, ties within a superpixel
    ranked together) or once (None). Two constant maps agree (1: nothing to order); one constant map
    against a varying one gives 0."""
    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.ptp(a) == np.ptp(b) else 0.0
    w = np.ones(a.size) if weights is None else np.ravel(np.asarray(weights, np.float64))
    W = w / w.sum()

    def ranks(v):  # the mid-rank of each feature's pixels, equal values (within or across features) tied
        order = np.argsort(v, kind="stable")
        vs, ws = v[order], w[order]
        first = np.r_[True, vs[1:] != vs[:-1]]
        group = np.cumsum(first) - 1
        end = np.cumsum(np.bincount(group, weights=ws))  # pixels up to each group's last
        start = end - np.bincount(group, weights=ws)
        r = np.empty(v.size)
        r[order] = ((start + 1 + end) / 2)[group]
        return r

    ra, rb = ranks(a), ranks(b)
    da, db = ra - W @ ra, rb - W @ rb
    den = np.sqrt((W @ (da * da)) * (W @ (db * db)))
    return float(W @ (da * db) / den) if den > 0 else 0.0


def predicted_agreement(half_correlation: float, parts: float = 2.0) -> float:
    """The rank correlation a map from all the samples is expected to have with its limit, from the
    correlation r of the maps of two disjoint halves (split-half reliability): Spearman-Brown's
    r_k = k r / (1 + (k - 1) r) is the correlation of two maps each made of k halves' worth of
    samples (k = ``parts``: 2 when the halves make up all the samples), and its square root the
    correlation of one with the limit (classical test theory; Spearman 1910, Brown 1910)."""
    r, k = float(half_correlation), float(parts)
    return float(np.sqrt(k * r / (1 + (k - 1) * r))) if r > 0 else 0.0


QUARTER_GROUPS = ((0,), (1,), (2,), (3,), (0, 1), (2, 3), (0, 2), (1, 3), (0, 3), (1, 2))
"""The maps the rank rule reads: the samples dealt into four disjoint quarters, each quarter alone, then
the three ways to pair them into halves ((0, 1) | (2, 3) are ``halves``)."""


def quarter_of(units) -> np.ndarray:
    """The quarter (0-3) of each sampling unit (a draw, or a pair of complementary draws) dealt in
    turn: 2 (u mod 2) + (u div 2) mod 2, so quarters (0, 1) hold the even units and (2, 3) the odd."""
    u = np.asarray(units)
    return 2 * (u % 2) + (u // 2) % 2


def split_agreements(maps, weights=None, pairings=(0, 1, 2), quarters: bool = True) -> tuple[float, float | None]:
    """(r2, r4) from the maps of QUARTER_GROUPS, in that order: the mean rank correlation of the pairs
    of halves named by ``pairings`` (0: quarters (0, 1) | (2, 3), 1: (0, 2) | (1, 3), 2: (0, 3) | (1, 2);
    a design whose only balanced halves are (0, 1) | (2, 3), like RISE's Sobol blocks, names 0 alone)
    and of the six pairs of quarters (None without ``quarters``: Spearman-Brown alone needs no r4)."""
    if len(maps) != len(QUARTER_GROUPS):
        raise ValueError(f"split_agreements needs {len(QUARTER_GROUPS)} maps (QUARTER_GROUPS), got {len(maps)}")
    r2 = float(np.mean([rank_correlation(maps[4 + 2 * k], maps[5 + 2 * k], weights) for k in pairings]))
    if not quarters:
        return r2, None
    r4 = np.mean([rank_correlation(maps[i], maps[j], weights) for i in range(4) for j in range(i + 1, 4)])
    return r2, float(r4)


def rank_exponent(r2: float, r4: float) -> float:
    """How a map's rank disagreement grows with its noise variance, read from halves and quarters
    (whose noise variance is twice theirs): 1 - r ~ variance^g, g = log2((1 - r4) / (1 - r2)),
    kept within [0.5, 1]. 1 is Spearman-Brown's case, ranks that move smoothly with the values (1 - r
    in proportion to the variance, as for Pearson's r of normal values). It drops toward 0.5 when
    the values are heavy-tailed or bunched: most of the disagreement is then nearby features trading
    places, whose chance grows with the noise's standard deviation, not its variance (the same reason
    Kendall's 1 - tau goes as sqrt(1 - r) for normal pairs, Kendall 1938)."""
    if r2 >= 1.0:  # the halves agree exactly: nothing to scale
        return 1.0
    if r4 >= r2:  # the quarters agree as well as the halves: the noise hides the trend; assume the slowest
        return 0.5
    return float(np.clip(np.log2((1.0 - r4) / (1.0 - r2)), 0.5, 1.0))


def predicted_disagreement(r2: float, r4: float | None, parts: float = 2.0) -> float:
    """The rank rule's figure: 1 - the rank correlation a map of ``parts`` halves' worth of samples is
    expected to have with its limit, given the halves' and quarters' agreement (``split_agreements``).
    Spearman-Brown (``predicted_agreement``) scaled by (2 parts)^(1 - g), g = ``rank_exponent``
    (r4 None: g = 1, Spearman-Brown alone):
    the full map's noise variance is 1 / (2 parts) of what the two halves' correlation reflects, so
    with 1 - r ~ variance^g the disagreement falls by (2 parts)^g, not (2 parts). Equal to
    Spearman-Brown when g = 1. On the shipped model's rocket picture (LIME paired), g ~ 0.7 and
    Spearman-Brown alone predicted 0.945 at 700 samples where the map's correlation with its limit
    (extrapolated from 1,000-9,000-sample truths) was 0.928; this figure said 0.927."""
    sb = 1.0 - predicted_agreement(r2, parts)
    if r4 is None:  # no quarters: Spearman-Brown alone (g = 1)
        return float(sb)
    return float(min(1.0, sb * (2.0 * float(parts)) ** (1.0 - rank_exponent(r2, r4))))


def check_count(value, name: str, minimum: int = 1) -> int:
    """An integer parameter >= minimum (the kernels' own check, one message everywhere)."""
    return _check_positive_int(value, name, minimum)
