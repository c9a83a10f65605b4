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

    num_samples   permutations (default 10: five antithetic pairs); None = all M!
    num_features, segmentation, fill, seed, score   as for LIME / Kernel SHAP
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import engine
from ..kernels._checks import check_seed
from .base import check_count, check_score
from .superpixels import SuperpixelMethod

ENUMERATE_UP_TO = 40320  # 8!: beyond this num_samples=None is refused (the walk would be too long)


class PermutationSHAP(SuperpixelMethod):
    name = "permutation-shap"

    def __init__(self, num_samples: int | None = 10, num_features: int = 50, segmentation="slic", fill="mean",
                 seed: int = 0, score: str = "probabilities", progress: bool | None = None,
                 chunk_size: int | None = None, memory_budget: int = engine.DEFAULT_MEMORY_BUDGET):
        self.num_samples = None if num_samples is None else check_count(num_samples, "num_samples")
        self.num_features = check_count(num_features, "num_features")
        self.segmentation = segmentation
        self.fill = fill
        self.seed = check_seed(seed)
        self._engine_options(check_score(score), progress, chunk_size, memory_budget)

    def permutations(self, k: int) -> np.ndarray:
        """(P, k) int64 orders: all k! when asked (or cheaper), else antithetic pairs from the seed."""
        total = math.factorial(k)
        if self.num_samples is None or self.num_samples >= total:
            if total > ENUMERATE_UP_TO:
                from ..errors import InputError

                raise InputError(f"enumerating all {k}! permutations is too many; give num_samples= "
                                 f"(or at most 8 features)")
            return np.array(list(itertools.permutations(range(k))), np.int64).reshape(-1, k)
        rng = np.random.default_rng(self.seed)
        firsts = np.stack([rng.permutation(k) for _ in range((self.num_samples + 1) // 2)])
        both = np.empty((2 * firsts.shape[0], k), np.int64)
        both[0::2], both[1::2] = firsts, firsts[:, ::-1]
        return both[: self.num_samples]

    def sample_masks(self, k: int) -> tuple[np.ndarray, dict]:
        perms = self.permutations(k)
        P = perms.shape[0]
        prefix = np.zeros((P, k + 1, k), np.uint8)  # prefix[p, s]: the first s features of perms[p] shown
        for s in range(1, k + 1):
            prefix[np.arange(P), s:, perms[:, s - 1]] = 1
        inner = prefix[:, 1:k].reshape(-1, k)  # sizes 1 .. k-1: the ends are scored by the engine
        if inner.shape[0] == 0:  # one feature: only the ends
            return inner, {"perms": perms, "where": np.zeros((P, 0), np.int64)}
        masks, where = np.unique(inner, axis=0, return_inverse=True)
        return masks, {"perms": perms, "where": where.reshape(P, k - 1)}

    def aggregate(self, run, setup, targets):
        perms, where = setup.state["perms"], setup.state["where"]
        P, k = perms.shape
        table = np.concatenate([run.baseline_scores[None], run.scores, run.input_scores[None]]).astype(np.float64)
        walk = np.concatenate([np.zeros((P, 1), np.int64), where + 1, np.full((P, 1), table.shape[0] - 1)], axis=1)
        out = []
        for t in targets:
            steps = np.diff(table[walk, t], axis=1)  # (P, k): the change when perms[p, s] is revealed
            phi = np.zeros(k)
            np.add.at(phi, perms, steps)
            phi /= P
            gap = float(phi.sum() - (run.input_scores[t] - run.baseline_scores[t]))
            out.append(self.feature_result(setup, phi, permutations=int(P), num_samples=int(P),
                                           coalitions_scored=int(run.scores.shape[0]) + 2,
                                           base_value=float(run.baseline_scores[t]),
                                           prediction=float(run.input_scores[t]), efficiency_gap=gap))
        return out
