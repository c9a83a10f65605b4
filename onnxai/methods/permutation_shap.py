"""Permutation Shapley values (shap's PermutationExplainer): walk through the superpixels in a random
order, revealing one at a time over the fill, and credit each with the score change it causes.

    phi_j = mean over permutations pi of  f(x_{S_pi,j} + j) - f(x_{S_pi,j})

with S_pi,j the features before j in pi (x_S: features in S show the picture, the rest the fill).
Every permutation's changes add up to f(x) - f(fill) exactly, so the values are efficient by
construction, whatever the number of permutations. Permutations are drawn in antithetic pairs
(pi and its reverse, as shap does), seeded. Each permutation costs M - 1 coalitions; the empty and
the full coalition (the fill and the input) are scored once, as the engine's end points, and a
coalition that several permutations share is scored once. With ``num_samples=None`` (or at least
M! permutations) every permutation is enumerated: the values are then the exact Shapley values of
the M superpixels.

    num_samples   permutations (default 10: five antithetic pairs); None = all M!; "auto" (with
                  tolerance and max_samples, counted in permutations) adds pairs until every standard
                  error is below tolerance x the largest |phi|

Standard errors (``Explanation.stderr``): phi is a mean over permutations, drawn in antithetic pairs,
so a pair is the independent unit: the standard error is the standard deviation of the pairs' means
over sqrt(pairs) (a lone last permutation is a unit of half the weight). All M! enumerated: 0.
    num_features, segmentation, fill, seed, score   as for LIME / Kernel SHAP
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import engine
from ..kernels._checks import check_seed
from ..kernels.variance import design_variance
from .base import check_budget, check_count, check_score
from .superpixels import SuperpixelMethod

ENUMERATE_UP_TO = 40320  # 8!: beyond this num_samples=None is refused (the walk would be too long)


class PermutationSHAP(SuperpixelMethod):
    name = "permutation-shap"

    def __init__(self, num_samples: int | None = 10, num_features: int = 50, segmentation="slic", fill="mean",
                 seed: int = 0, score: str = "probabilities", progress: bool | None = None,
                 chunk_size: int | None = None, memory_budget: int = engine.DEFAULT_MEMORY_BUDGET,
                 tolerance: float | None = None, max_samples: int = 200):
        self.num_samples, self.tolerance, self.max_samples = check_budget(
            num_samples, tolerance, max_samples, allow_none=True, first=4, unit="permutations (two antithetic pairs)")
        self.num_features = check_count(num_features, "num_features")
        self.segmentation = segmentation
        self.fill = fill
        self.seed = check_seed(seed)
        self._engine_options(check_score(score), progress, chunk_size, memory_budget)

    def permutations(self, k: int) -> np.ndarray:
        """(P, k) int64 orders: all k! when asked (or cheaper), else antithetic pairs from the seed."""
        total = math.factorial(k)
        want = self.draws()
        if want is None or want >= total:
            if total > ENUMERATE_UP_TO:
                from ..errors import InputError

                raise InputError(f"enumerating all {k}! permutations is too many; give num_samples= "
                                 f"(or at most 8 features)")
            return np.array(list(itertools.permutations(range(k))), np.int64).reshape(-1, k)
        rng = np.random.default_rng(self.seed)
        firsts = np.stack([rng.permutation(k) for _ in range((want + 1) // 2)])
        both = np.empty((2 * firsts.shape[0], k), np.int64)
        both[0::2], both[1::2] = firsts, firsts[:, ::-1]
        return both[: want]

    def sample_masks(self, k: int) -> tuple[np.ndarray, dict]:
        perms = self.permutations(k)
        P = perms.shape[0]
        prefix = np.zeros((P, k + 1, k), np.uint8)  # prefix[p, s]: the first s features of perms[p] shown
        for s in range(1, k + 1):
            prefix[np.arange(P), s:, perms[:, s - 1]] = 1
        inner = prefix[:, 1:k].reshape(-1, k)  # sizes 1 .. k-1: the ends are scored by the engine
        if inner.shape[0] == 0:  # one feature: only the ends
            return inner, {"perms": perms, "where": np.zeros((P, 0), np.int64), "needs": np.zeros(P, np.int64)}
        masks, first, where = np.unique(inner, axis=0, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # masks in the order the permutations first need them,
        rank = np.empty_like(order)  # so that the first p permutations need a prefix of the masks
        rank[order] = np.arange(order.size)
        where = rank[where.reshape(P, k - 1)]
        needs = np.maximum.accumulate(where.max(axis=1) + 1)  # masks scored before permutation p is whole
        state = {"perms": perms, "where": where, "needs": needs}
        if self.auto:
            state["first"] = int(needs[min(P, 4) - 1])  # two antithetic pairs at least
        return masks[order], state

    def aggregate(self, run, setup, targets):
        perms, where = setup.state["perms"], setup.state["where"]
        P = int(np.searchsorted(setup.state["needs"], run.scores.shape[0], side="right")) if self.auto else perms.shape[0]
        perms, where = perms[:P], where[:P]
        P, k = perms.shape
        units = np.arange(P) // 2  # antithetic pairs
        exact = self.num_samples is None or P >= math.factorial(k)
        table = np.concatenate([run.baseline_scores[None], run.scores, run.input_scores[None]]).astype(np.float64)
        walk = np.concatenate([np.zeros((P, 1), np.int64), where + 1, np.full((P, 1), table.shape[0] - 1)], axis=1)
        out = []
        for t in targets:
            steps = np.diff(table[walk, t], axis=1)  # (P, k): the change when perms[p, s] is revealed
            phi = np.zeros(k)
            np.add.at(phi, perms, steps)
            phi /= P
            per = np.zeros((P, k))  # each permutation's contributions, weighted 1 / P
            np.put_along_axis(per, perms, steps / P, axis=1)
            se = np.zeros(k) if exact or P < 2 else np.sqrt(np.maximum(np.diag(design_variance(per, units)), 0))
            gap = float(phi.sum() - (run.input_scores[t] - run.baseline_scores[t]))
            out.append(self.feature_result(setup, phi, permutations=int(P), num_samples=int(P),
                                           coalitions_scored=int(run.scores.shape[0]) + 2,
                                           base_value=float(run.baseline_scores[t]),
                                           prediction=float(run.input_scores[t]), efficiency_gap=gap))
            out[-1]["stderr"] = se.astype(np.float32)
        return out
