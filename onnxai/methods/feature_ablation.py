"""Feature ablation (captum's FeatureAblation): hide one superpixel at a time and measure the score drop.

    importance_j = f(x) - f(x with feature j showing the fill)

M features cost M + 1 forward passes (the M ablations and the input, in one engine run). The map
paints each superpixel with its drop (positive: hiding it lowers the class score). Parameters as
the other superpixel methods: num_features, segmentation, fill, seed (of the segmentation), and
score ("probabilities" or "logits"). Deterministic: no sampling, no standard error.
"""

from __future__ import annotations

import numpy as np

from .. import engine
from .base import check_count, check_score, check_seed
from .superpixels import SuperpixelMethod


class FeatureAblation(SuperpixelMethod):
    name = "feature-ablation"
    end_points = 1  # the input; the ablations are the masks

    def __init__(self, num_features: int = 50, segmentation="slic", fill="mean", seed: int = 0,
                 score: str = "probabilities", progress: bool | None = None, chunk_size: int | None = None,
                 memory_budget: int = engine.DEFAULT_MEMORY_BUDGET):
        self.num_features = check_count(num_features, "num_features")
        self.segmentation = segmentation
        self.fill = fill
        self.seed = check_seed(seed)
        self._engine_options(check_score(score), progress, chunk_size, memory_budget)

    def sample_masks(self, k: int) -> tuple[np.ndarray, dict]:
        """(k, k) uint8: row j hides feature j only."""
        return (1 - np.eye(k, dtype=np.uint8)), {}

    def aggregate(self, run, setup, targets):
        drops = run.input_scores[None, :].astype(np.float64) - run.scores  # (k, classes)
        return [self.feature_result(setup, drops[:, t]) for t in targets]
