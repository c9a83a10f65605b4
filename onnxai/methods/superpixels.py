"""What the superpixel methods share (LIME, Kernel SHAP, feature ablation, permutation Shapley values):
features from a segmentation, binary masks over them, a fill, and per-feature values painted back.

    SuperpixelMethod.setup     segments (H, W) int32 -> masks (n, k) from ``sample_masks(k)`` ->
                               FeatureMasks source and the fill in model space
    SuperpixelMethod.paint     per-feature values -> the map (superpixels painted, or grid cells
                               upsampled bicubically / kept per cell)

A subclass supplies ``sample_masks(k) -> (masks (n, k) uint8, state)`` and ``aggregate``; the
parameters ``num_features``, ``segmentation``, ``fill`` and ``seed`` mean the same in all of them:

    num_features    how many superpixels or grid cells (approximate for superpixels; a segmentation
                    that gives fewer than half is retried, see features.segment_enough, and the
                    number obtained is in extras: num_features, num_features_asked, segmentation_note)
    segmentation    "slic" (default), "quickshift" (lime's), "felzenszwalb", "grid" (MATLAB's grid),
                    or an (H, W) label map of your own
    fill            what a hidden feature shows (see methods.base)
"""

from __future__ import annotations

import numpy as np

from .. import engine, features, kernels
from .._log import note
from ..errors import InputError
from .base import PerturbationMethod, Setup
from .fills import make_fill


class SuperpixelMethod(PerturbationMethod):
    num_features = 50
    segmentation = "slic"
    fill = "mean"
    seed = 0
    upsample = "nearest"

    def segments_for(self, crop: np.ndarray) -> tuple[np.ndarray, str | None]:
        """(segments, what was done when the segmentation gave too few features, else None); fewer
        than 2 features is an error: a map over one feature is a constant, not an explanation."""
        how = None
        if isinstance(self.segmentation, np.ndarray):
            segments = features.from_labels(self.segmentation, crop.shape[:2])
        else:
            segments, how = features.segment_enough(crop, method=self.segmentation, num_features=self.num_features,
                                                    seed=self.seed)
        k = features.num_segments(segments)
        if k < 2:
            raise InputError(f"the segmentation of the {crop.shape[0]}x{crop.shape[1]} picture gave {k} feature; a "
                             "map needs at least 2: give more num_features (--features), another segmentation "
                             "(--segmentation grid) or a label map of your own")
        if how:
            note(how)
        return segments, how

    def sample_masks(self, k: int) -> tuple[np.ndarray, dict]:
        """(masks (n, k) uint8, anything ``aggregate`` needs about them) for k features."""
        raise NotImplementedError

    def setup(self, model, x, crop, probs) -> Setup:
        segments, how = self.segments_for(crop)
        k = features.num_segments(segments)
        masks, state = self.sample_masks(k)
        baseline = make_fill(model, crop, x, self.fill, segments=segments)
        state.update(segments=segments, masks=masks, k=k, segmentation_note=how)
        return Setup(engine.FeatureMasks(masks, segments), baseline, state)

    def rank_weights(self, setup: Setup) -> np.ndarray:
        """Pixels per feature: the rank rule of num_samples="auto" compares the painted maps."""
        return np.bincount(setup.state["segments"].ravel(), minlength=setup.state["k"]).astype(np.float64)

    def is_grid(self) -> bool:
        return isinstance(self.segmentation, str) and self.segmentation == "grid"

    def paint(self, segments: np.ndarray, values: np.ndarray) -> dict:
        """Per-feature values -> {map, raw_map}: superpixels painted with their value; a grid's cells
        upsampled bicubically ("auto"/"bicubic") or one value per cell ("none")."""
        map_ = values[segments].astype(np.float32)
        raw = None
        if self.is_grid() and self.upsample in ("auto", "bicubic", "none"):
            raw = grid_cells(segments, values)
            map_ = raw if self.upsample == "none" else kernels.resize(raw, segments.shape[0], segments.shape[1],
                                                                     method="bicubic")
        elif self.upsample == "bicubic":
            raise InputError("bicubic upsampling needs segmentation='grid'; superpixels are painted (nearest)")
        return {"map": map_, "raw_map": raw}

    def feature_result(self, setup: Setup, values: np.ndarray, **extras) -> dict:
        """One target's part: the painted map, the per-feature values and the segments."""
        part = self.paint(setup.state["segments"], values)
        part.update(segments=setup.state["segments"], importance=np.asarray(values, np.float32),
                    extras=dict(num_features=setup.state["k"], **extras))
        if setup.state.get("segmentation_note"):
            part["extras"].update(num_features_asked=self.num_features, segmentation_note=setup.state["segmentation_note"])
        return part


def grid_cells(segments: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(rows, cols) array of per-cell values for a grid segment map (any label order)."""
    row_starts = np.flatnonzero(np.r_[True, segments[1:, 0] != segments[:-1, 0]])
    col_starts = np.flatnonzero(np.r_[True, segments[0, 1:] != segments[0, :-1]])
    return np.asarray(values)[segments[np.ix_(row_starts, col_starts)]].astype(np.float32)
