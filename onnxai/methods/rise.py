"""RISE (Petsiuk et al. 2018): random smooth masks, the map is the score-weighted mean mask.

    num_samples       N random masks (default 2000; the old name num_masks is deprecated)
    cells             s: each mask is an s x s grid of cells (default 8) ...
    keep_probability  ... each kept with probability p (default 0.5; old name p), upsampled
                      bilinearly and randomly shifted (kernels.masks.GridMasks)
    seed       the masks are drawn from default_rng(seed): same seed, same masks, same map
    fill       what hidden pixels show; "zero" in model space (default, RISE's x o M) or any fill of
               methods.base
    score      "probabilities" (default, RISE's f_c) or "logits"
    sampling   "sobol" (default): the cell grids and shifts of all masks from one scrambled Sobol
               sequence (scipy.stats.qmc, seeded), a quasi-Monte Carlo mean for which the i.i.d.
               standard error below is conservative; on the bench's pictures it reached Spearman 0.90
               / 0.94 against a 20,000-mask map at 500 masks where independent draws reached 0.53 /
               0.80. "independent": every mask drawn on its own (the RISE paper's)

How conservative (measured on chelsea, 5 seeds, against a 16,384-mask map): with Sobol masks the
errors were about a quarter of the stated standard errors at 512-2048 masks (root mean square of
error / stderr 0.22-0.27; every 95% interval held the reference), where independent masks gave 1.0
and 94%. Two ways to a tighter figure failed: the spread of aligned blocks of the one sequence (8 to 15
nets) read 0.67-0.94 on chelsea but 4.7 on the hand-built region model at 512 masks (its blocks err
together: their shared scrambling), and 8 or 16 independently scrambled sequences, interleaved, were
calibrated (0.94-1.4) but their maps had 2-8x the squared error of one sequence's.

    map = sum_i f_c(x o M_i) M_i / (N p)

Standard error per pixel (``Explanation.stderr``, shaped like the map): the map is a Monte Carlo mean
of N independent draws f_c(x o M_i) M_i / p, so its standard error is their sample standard deviation
over sqrt(N), from the running sums of f M and (f M)^2 (``kernels.variance.mean_stderr``; the masks
are made a second time, a chunk at a time, for the squares). num_samples="auto" (with tolerance and
max_samples) stops on the rank rule (methods.base.Method.auto_check): the maps of the mask blocks
[0, h/2), [h/2, h), [h, 3h/2) and [3h/2, 2h) (the quarters of ``part_maps``, h the largest power of
two with 2h <= n; the halves are [0, h) and [h, 2h)) agree well enough that the map of all n masks
has a predicted rank disagreement with its limit of at most tolerance (default 0.05; Spearman-Brown on
the halves alone, ``quarters_scale``, with n / h blocks' worth of masks, ``halves_parts``: the map
holds more masks than the two blocks between powers of two), or every pixel's standard error is below
0.05 x the standard deviation of the map's pixels.

The masks are made chunk by chunk when the engine asks for them (the cell grids and shifts of all N
are drawn up front, in random_grid_masks's order, so chunk i is bit for bit rows i of
``random_grid_masks(N, H, W, s, p, seed)``). The scores are folded in from the cell grids and the
upsampling matrices (``GridMasks.fold``), without making the masks a second time.
"""

from __future__ import annotations

import copy

import numpy as np

from .. import engine
from ..errors import InputError
from ..kernels.masks import GridMasks
from ..kernels.variance import mean_stderr
from .base import (AUTO_MAX_SAMPLES, PerturbationMethod, Setup, check_budget, check_count, check_number, check_seed,
                   check_score, deprecated_alias)
from .fills import make_fill

SQUARES_CHUNK = 128  # masks made at a time for the running sum of squares


class RISE(PerturbationMethod):
    name = "rise"

    def __init__(self, num_samples: int = 2000, cells: int = 8, keep_probability: float = 0.5, seed: int = 0,
                 fill="zero", score: str = "auto", progress: bool | None = None,
                 chunk_size: int | None = None, memory_budget: int = engine.DEFAULT_MEMORY_BUDGET,
                 num_masks: int | None = None, p: float | None = None, kind: str | None = None,
                 tolerance: float | None = None, max_samples: int = AUTO_MAX_SAMPLES,
                 sampling: str = "sobol"):
        num_samples = deprecated_alias("RISE", "num_masks", "num_samples", num_masks, num_samples, 2000)
        keep_probability = deprecated_alias("RISE", "p", "keep_probability", p, keep_probability, 0.5)
        score = deprecated_alias("RISE", "kind", "score", kind, score, "auto")
        self.num_samples, self.tolerance, self.max_samples = check_budget(num_samples, tolerance, max_samples)
        self.cells = check_count(cells, "cells")
        self.keep_probability = check_number(keep_probability, "keep_probability", 0, 1, low_open=True)
        if sampling not in ("independent", "sobol"):
            raise InputError(f"unknown sampling {sampling!r}; use 'independent' or 'sobol'")
        self.sampling = sampling
        self.seed = check_seed(seed)
        self.fill = fill
        self._engine_options(check_score(score, allow_auto=True), progress, chunk_size, memory_budget)

    def setup(self, model, x, crop, probs) -> Setup:
        H, W = crop.shape[:2]
        masks = GridMasks(self.draws(), H, W, self.cells, self.keep_probability, self.seed, self.sampling)
        return Setup(engine.SoftMasks(n=masks.n, make=masks), make_fill(model, crop, x, self.fill),
                     {"masks": masks, "sums": None})

    def _sums(self, setup, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Running sums over the first len(scores) masks of f M and (f M)^2: (T, H, W) each, and n.
        Only the masks not yet summed are made again (a prefix grows between "auto" checks). The sum
        of f M is also kept as it stood after every 2^k and 3 x 2^k masks (``part_maps``' blocks)."""
        masks = setup.state["masks"]
        n, T = scores.shape
        sums = setup.state["sums"]
        if sums is None or sums[0].shape[0] != T:
            sums = [np.zeros((T, masks.height, masks.width)), np.zeros((T, masks.height, masks.width)), 0, {}]
        a = sums[2]
        while a < n:
            b = min(n, a + SQUARES_CHUNK, _next_snapshot(a))  # stop at the next 2^k or 3 x 2^k too
            m = masks(a, b).astype(np.float64)  # (c, H, W)
            f = scores[a:b]
            sums[0] += np.tensordot(f, m, axes=(0, 0))
            sums[1] += np.tensordot(f * f, m * m, axes=(0, 0))
            if b == _next_snapshot(b - 1):
                sums[3][b] = sums[0].copy()
            a = b
        sums[2] = max(sums[2], n)
        setup.state["sums"] = sums
        return sums[0], sums[1], n

    rank_rule = True

    def part_maps(self, run, setup, targets, groups):
        """Quarter q is the mask block [q h/2, (q + 1) h/2), h the largest power of two with 2h <= n: each
        a whole scrambled Sobol net (odd and even masks of a Sobol sequence are not: each keeps one
        side of the first coordinate) and, for independent masks, an independent run; a group's map
        is the mean over its blocks. Quarters (0, 1) and (2, 3) are the halves [0, h) and [h, 2h)."""
        n = run.scores.shape[0]
        if n < 4:
            raise ValueError(f"RISE's quarters need at least 4 masks, not {n}")
        self._sums(setup, run.scores[:, targets].astype(np.float64))
        snaps = setup.state["sums"][3]
        q = _block(n) // 2
        cum = [0.0] + [snaps[q * (i + 1)] for i in range(4)]
        block = [cum[i + 1] - cum[i] for i in range(4)]
        return [[sum(block[j][i] for j in g) / (q * len(g)) for g in groups] for i in range(len(targets))]

    quarters_scale = False  # Spearman-Brown alone: with the quarters' exponent auto stopped on the benchmark at
    # 1.09 / 1.51 / 0.82x the masks needed (chelsea / coffee / rocket, Sobol, 3 seeds), without it 1.09 / 1.20 / 0.82x:
    # a per-pixel map is a continuum of values (Spearman-Brown's case), and it extrapolates from the two
    # blocks to n / h of them, where a noisy exponent weighs most

    @property
    def halves_pairings(self):
        """Sobol: only the blocks [0, h) and [h, 2h) are whole nets (quarters 0 and 2 together are not:
        on the benchmark, pairing them too made auto stop at 2.0-2.6x the masks needed); independent
        masks: every pairing."""
        return (0,) if self.sampling == "sobol" else (0, 1, 2)

    def halves_parts(self, n: int) -> float:
        """The map of n masks holds n / h blocks' worth (2 at a power of two, up to 4 just before the
        next): counted, the prediction follows the masks scored since the blocks last grew. On the
        bench's coffee, auto stopped at 579-704 masks (the map needed 608) instead of 1040."""
        return n / _block(n)

    def estimate(self, run, setup, targets):
        s1, s2, n = self._sums(setup, run.scores[:, targets].astype(np.float64))
        p = self.keep_probability
        maps = s1 / (n * p)
        se = mean_stderr(s1, s2, n) / p
        return [m - m.mean() for m in maps], list(se)

    def aggregate(self, run, setup, targets):
        masks = setup.state["masks"]
        n = run.scores.shape[0]
        if n < masks.n:  # "auto" stopped early: the first n masks
            masks = copy.copy(masks)
            masks.n, masks.grid, masks.shifts = n, masks.grid[:n], masks.shifts[:n]
        scores = run.scores[:, targets].astype(np.float64)
        maps = masks.fold(scores) / (n * self.keep_probability)  # (T, H, W)
        s1, s2, _ = self._sums(setup, scores)
        se = mean_stderr(s1, s2, n) / self.keep_probability
        return [{"map": maps[i], "stderr": se[i].astype(np.float32),
                 "extras": dict(masks=n, num_samples=n, cells=self.cells, keep_probability=self.keep_probability)}
                for i in range(len(targets))]


def _block(n: int) -> int:
    """h, the largest power of two with 2h <= n (at least 1): the size of each of ``halves``' blocks."""
    return 1 << max(0, (int(n) // 2).bit_length() - 1)


def _next_snapshot(a: int) -> int:
    """The smallest 2^k or 3 x 2^k above a: where ``_sums`` keeps a copy of the running sum."""
    p = 1 << max(0, int(a).bit_length() - 1)  # the largest power of two <= a (1 for a = 0)
    return next(c for c in (p, 3 * p // 2, 2 * p) if c > a)
