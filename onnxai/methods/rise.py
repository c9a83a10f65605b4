"""RISE (Petsiuk et al. 2018): random smooth masks, the map is the score-weighted mean mask.

    num_samples       N random masks (default 2000; the old name num_masks is deprecated)
    cells             s: each mask is an s x s grid of cells (default 8) ...
    keep_probability  ... each kept with probability p (default 0.5; old name p), upsampled
                      bilinearly and randomly shifted (kernels.masks.GridMasks)
    seed       the masks are drawn from default_rng(seed): same seed, same masks, same map
    fill       what hidden pixels show; "zero" in model space (default, RISE's x o M) or any fill of
               methods.base
    score      "probabilities" (default, RISE's f_c) or "logits"

    map = sum_i f_c(x o M_i) M_i / (N p)

The masks are made chunk by chunk when the engine asks for them (the cell grids and shifts of all N
are drawn up front, in random_grid_masks's order, so chunk i is bit for bit rows i of
``random_grid_masks(N, H, W, s, p, seed)``). The scores are folded in from the cell grids and the
upsampling matrices (``GridMasks.fold``), without making the masks a second time.
"""

from __future__ import annotations

import numpy as np

from .. import engine
from ..errors import InputError
from ..kernels.masks import GridMasks
from .base import PerturbationMethod, Setup, check_count, check_score, deprecated_alias, make_fill


class RISE(PerturbationMethod):
    name = "rise"

    def __init__(self, num_samples: int = 2000, cells: int = 8, keep_probability: float = 0.5, seed: int = 0,
                 fill="zero", score: str = "probabilities", progress: bool | None = None,
                 chunk_size: int | None = None, memory_budget: int = engine.DEFAULT_MEMORY_BUDGET,
                 num_masks: int | None = None, p: float | None = None, kind: str | None = None):
        num_samples = deprecated_alias("RISE", "num_masks", "num_samples", num_masks, num_samples, 2000)
        keep_probability = deprecated_alias("RISE", "p", "keep_probability", p, keep_probability, 0.5)
        score = deprecated_alias("RISE", "kind", "score", kind, score, "probabilities")
        self.num_samples = check_count(num_samples, "num_samples")
        self.cells = check_count(cells, "cells")
        if not 0.0 < float(keep_probability) <= 1.0:
            raise InputError(f"keep_probability must be in (0, 1], not {keep_probability}")
        self.keep_probability = float(keep_probability)
        self.seed = int(seed)
        self.fill = fill
        self._engine_options(check_score(score), progress, chunk_size, memory_budget)

    def setup(self, model, x, crop, probs) -> Setup:
        H, W = crop.shape[:2]
        masks = GridMasks(self.num_samples, H, W, self.cells, self.keep_probability, self.seed)
        return Setup(engine.SoftMasks(n=masks.n, make=masks), make_fill(model, crop, x, self.fill), {"masks": masks})

    def aggregate(self, run, setup, targets):
        masks = setup.state["masks"]
        maps = masks.fold(run.scores[:, targets].astype(np.float64)) / (masks.n * self.keep_probability)  # (T, H, W)
        return [{"map": maps[i], "extras": dict(masks=masks.n, cells=self.cells,
                                                keep_probability=self.keep_probability)}
                for i in range(len(targets))]
