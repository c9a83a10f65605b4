"""LIME for images: random on/off superpixels, a weighted surrogate fitted to the class scores.

Names follow MATLAB's ``imageLIME`` where it has one, the ``lime`` package's otherwise:

    num_features    NumFeatures: how many superpixels or grid cells (approximate for superpixels)
    num_samples     NumSamples: how many perturbed pictures are scored (lime: num_samples)
    segmentation    "slic" (default), "quickshift" (lime's), "felzenszwalb", "grid" (MATLAB's grid),
                    or an (H, W) label map of your own
    surrogate       "tree" (MATLAB's default: a regression tree, importance = impurity decrease),
                    "linear" (lasso as MATLAB's "linear", alpha = 1/num_samples unless given),
                    "ridge" (the lime package's Ridge, alpha = 1 unless given)
    fill            what a hidden feature shows: "mean" (MATLAB), "segment-mean" (lime), "blur",
                    "black", a grey value, "R,G,B", or a baseline picture (see methods.base)
    kernel_width    lime's exponential kernel on the cosine distance to the full picture (0.25);
                    None gives every sample weight 1 (MATLAB's imageLIME weights samples by distance too)
    upsample        OutputUpsampling: "nearest" (superpixels are painted with their importance),
                    "bicubic" (grid cells smoothed to the input size), "none" (grid: one value per cell),
                    "auto" = bicubic for grids, nearest otherwise

Outputs: ``map`` (positive = evidence for the class with linear surrogates; tree importance is
unsigned), ``segments`` (the feature map), ``importance`` (per feature), and in ``extras`` the
surrogate's weighted R^2 and intercept.
"""

from __future__ import annotations

import numpy as np

from .. import engine, kernels
from ..errors import InputError
from .base import Method, make_fill

SURROGATES = ("tree", "linear", "ridge")
UPSAMPLING = ("auto", "nearest", "bicubic", "none")


class LIME(Method):
    name = "lime"

    def __init__(
        self,
        num_features: int = 49,
        num_samples: int = 1000,
        segmentation="slic",
        surrogate: str = "tree",
        fill="mean",
        kernel_width: float | None = 0.25,
        upsample: str = "auto",
        alpha: float | None = None,
        keep_probability: float = 0.5,
        seed: int = 0,
        progress: bool | None = None,
        memory_budget: int = engine.DEFAULT_MEMORY_BUDGET,
        chunk_size: int | None = None,
    ):
        if surrogate not in SURROGATES:
            raise InputError(f"unknown surrogate {surrogate!r}; use one of {SURROGATES}")
        if upsample not in UPSAMPLING:
            raise InputError(f"unknown upsampling {upsample!r}; use one of {UPSAMPLING}")
        if int(num_samples) < 2:
            raise InputError("num_samples must be at least 2")
        if int(num_features) < 1:
            raise InputError("num_features must be at least 1")
        self.num_features = int(num_features)
        self.num_samples = int(num_samples)
        self.segmentation = segmentation
        self.surrogate = surrogate
        self.fill = fill
        self.kernel_width = kernel_width
        self.upsample = upsample
        self.alpha = alpha
        self.keep_probability = float(keep_probability)
        self.seed = int(seed)
        self._progress = progress
        self._memory_budget = memory_budget
        self._chunk_size = chunk_size

    def params(self) -> dict:
        p = super().params()
        if isinstance(p["segmentation"], np.ndarray):
            p["segmentation"] = "user label map"
        if isinstance(p["fill"], np.ndarray):
            p["fill"] = "baseline picture"
        return p

    # ------------------------------------------------------------------ steps
    def segments_for(self, crop: np.ndarray) -> np.ndarray:
        from .. import features

        if isinstance(self.segmentation, np.ndarray):
            return features.from_labels(self.segmentation, crop.shape[:2])
        return features.segment(crop, method=self.segmentation, num_features=self.num_features, seed=self.seed)

    def sample_masks(self, k: int) -> np.ndarray:
        """(num_samples, k) uint8; row 0 is all ones (the unperturbed picture)."""
        return kernels.random_binary_masks(self.num_samples, k, p=self.keep_probability, seed=self.seed,
                                           first_all_ones=True)

    def sample_weights(self, masks: np.ndarray) -> np.ndarray:
        if self.kernel_width is None:
            return np.ones(masks.shape[0])
        return kernels.lime_kernel_weights(masks, self.kernel_width)

    def fit(self, masks: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float | None, float]:
        """Weighted surrogate on (masks -> y): (importance (k,), intercept or None for a tree, weighted R^2)."""
        X = masks.astype(np.float64)
        y = np.asarray(y, np.float64)
        if self.surrogate == "ridge":
            coef, icpt = kernels.weighted_ridge(X, y, w, alpha=1.0 if self.alpha is None else self.alpha)
            return coef, icpt, kernels.weighted_r2(X, y, w, coef, icpt)
        if self.surrogate == "linear":
            coef, icpt = kernels.weighted_lasso(X, y, w, alpha=self._lasso_alpha(),
                                                max_iter=5000, tol=1e-6)
            return coef, icpt, kernels.weighted_r2(X, y, w, coef, icpt)
        from sklearn.tree import DecisionTreeRegressor

        tree = DecisionTreeRegressor(random_state=self.seed, min_samples_leaf=max(1, self.num_samples // 200))
        tree.fit(X, y, sample_weight=w)
        pred = tree.predict(X)
        r2 = _weighted_r2_of(y, pred, w)
        return tree.feature_importances_.astype(np.float64), None, r2

    def _lasso_alpha(self) -> float:
        # MATLAB's fitrlinear (behind imageLIME's "linear") defaults to lambda = 1 / n observations.
        return 1.0 / self.num_samples if self.alpha is None else float(self.alpha)

    def _explain(self, model, x, crop, probs, targets):
        segments = self.segments_for(crop)
        k = int(segments.max()) + 1
        masks = self.sample_masks(k)
        baseline = make_fill(model, crop, x, self.fill, segments=segments)
        res = engine.run(model, x, baseline, engine.FeatureMasks(masks, segments), progress=self._progress,
                         memory_budget=self._memory_budget, chunk_size=self._chunk_size, desc="LIME")
        w = self.sample_weights(masks)
        out = []
        for t in targets:
            importance, intercept, r2 = self.fit(masks, res.scores[:, t], w)
            raw = None
            map_ = importance[segments].astype(np.float32)
            if self._is_grid() and self.upsample in ("auto", "bicubic", "none"):
                raw = grid_cells(segments, importance)
                if self.upsample == "none":
                    map_ = raw
                else:
                    map_ = kernels.resize(raw, segments.shape[0], segments.shape[1], method="bicubic")
            elif self.upsample == "bicubic":
                raise InputError("bicubic upsampling needs segmentation='grid'; superpixels are painted (nearest)")
            e = self._explanation(model, t, probs, map_, segments=segments, importance=importance.astype(np.float32),
                                  raw_map=raw)
            e.extras.update(r2=float(r2), num_features=k, num_samples=self.num_samples)
            if intercept is not None:
                e.extras["intercept"] = float(intercept)
            e.timings.update(forward=res.forward_s, engine=res.total_s)
            out.append(e)
        return out

    def _is_grid(self) -> bool:
        return isinstance(self.segmentation, str) and self.segmentation == "grid"


def grid_cells(segments: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(rows, cols) array of per-cell values for a grid segment map (any label order)."""
    row_starts = np.flatnonzero(np.r_[True, segments[1:, 0] != segments[:-1, 0]])
    col_starts = np.flatnonzero(np.r_[True, segments[0, 1:] != segments[0, :-1]])
    return np.asarray(values)[segments[np.ix_(row_starts, col_starts)]].astype(np.float32)


def _weighted_r2_of(y, pred, w) -> float:
    ybar = np.average(y, weights=w)
    ss_res = float(np.sum(w * (y - pred) ** 2))
    ss_tot = float(np.sum(w * (y - ybar) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0


def masked_topk(explanation, k: int = 5, fill: int = 0) -> np.ndarray:
    """The picture with only the k most important features visible (MATLAB's masked-image example)."""
    if explanation.segments is None or explanation.image is None:
        raise InputError("top-k masking needs an explanation with segments and the picture (LIME, Kernel SHAP)")
    keep = np.isin(explanation.segments, explanation.top_features(k))
    out = np.full_like(explanation.image, fill)
    out[keep] = explanation.image[keep]
    return out
