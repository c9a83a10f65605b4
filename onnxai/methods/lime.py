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

    keep_probability  the chance that a feature is shown in a sample (0.5)
    sampling        "independent" (lime's draw: every sample on its own) or "paired": each drawn mask
                    is followed by its complement (rows 2i and 2i+1; rows 0 and 1 are the full and the
                    empty picture), the complementary pairs of Covert & Lee (2021) carried over to
                    LIME; the sandwich standard errors then take the pair as the unit. Needs
                    keep_probability 0.5 (a complement shows each feature with 1 - p). Default (None):
                    "paired" for the ridge and lasso surrogates at keep_probability 0.5 (on the bench's
                    pictures it reached Spearman 0.95 with 1.6-1.8x fewer samples, 277 vs 489 and 390
                    vs 613), "independent" for the tree (no measured difference) and other p.
    score           "probabilities" (default) or "logits": which class score the surrogate fits
    num_samples="auto", tolerance, max_samples: score samples until the surrogates fitted on the
                    even and the odd draws (pairs) rank the superpixels alike enough that the full
                    map's predicted rank correlation with its limit reaches 1 - tolerance (default
                    0.05; methods.base.Method.auto_check), at most max_samples

Standard errors (``Explanation.stderr``, per feature): ridge, the sandwich estimator of the weighted
least squares (White 1980; ``kernels.variance.ridge_stderr``), robust to the surrogate's misfit;
lasso ("linear"), a bootstrap over the samples, complementary pairs resampled together (Efron &
Tibshirani 1993; 64 refits with the Numba solver; single rows as units held 87% of the population
lasso on the test game, pairs 94%); the tree's impurity importance has none (NaN).

Outputs: ``map`` (positive = evidence for the class with linear surrogates; tree importance is
unsigned), ``segments`` (the feature map), ``importance`` (per feature), and in ``extras`` the
surrogate's weighted R^2 and intercept.
"""

from __future__ import annotations

import numpy as np

from .. import engine, kernels
from ..errors import InputError
from ..kernels.variance import bootstrap_stderr, ridge_stderr
from .base import AUTO_MAX_SAMPLES, check_budget, check_count, check_number, check_score, check_seed
from .budget import quarter_of
from .superpixels import SuperpixelMethod

SURROGATES = ("tree", "linear", "ridge")
SAMPLING = ("independent", "paired")
UPSAMPLING = ("auto", "nearest", "bicubic", "none")
TREE_LEAF_FRACTION = 200  # the tree surrogate's smallest leaf holds num_samples / 200 samples (at least 1)


class LIME(SuperpixelMethod):
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
        score: str = "auto",
        progress: bool | None = None,
        memory_budget: int = engine.DEFAULT_MEMORY_BUDGET,
        chunk_size: int | None = None,
        tolerance: float | None = None,
        max_samples: int = AUTO_MAX_SAMPLES,
        sampling: str | None = None,
    ):
        if surrogate not in SURROGATES:
            raise InputError(f"unknown surrogate {surrogate!r}; use one of {SURROGATES}")
        if upsample not in UPSAMPLING:
            raise InputError(f"unknown upsampling {upsample!r}; use one of {UPSAMPLING}")
        self.num_features = check_count(num_features, "num_features")
        self.num_samples, self.tolerance, self.max_samples = check_budget(num_samples, tolerance, max_samples, 2)
        if self.auto and surrogate == "tree":
            raise InputError("num_samples='auto' needs standard errors, which the tree surrogate has none of; use "
                             "surrogate='ridge' or 'linear' (--surrogate ridge), or a fixed number of samples")
        self.segmentation = segmentation
        self.surrogate = surrogate
        self.fill = fill
        self.kernel_width = None if kernel_width is None else check_number(kernel_width, "kernel_width", 0, low_open=True)
        self.upsample = upsample
        self.alpha = None if alpha is None else check_number(alpha, "alpha", 0)
        self.keep_probability = check_number(keep_probability, "keep_probability", 0, 1, True, True)
        if sampling is None:  # paired where it was measured to help (the linear surrogates), lime's draw otherwise
            sampling = "paired" if surrogate != "tree" and self.keep_probability == 0.5 else "independent"
        if sampling not in SAMPLING:
            raise InputError(f"unknown sampling {sampling!r}; use one of {SAMPLING}")
        if sampling == "paired" and self.keep_probability != 0.5:
            raise InputError(f"sampling='paired' needs keep_probability 0.5 (a complement shows each feature with "
                             f"1 - p); got {self.keep_probability}")
        self.sampling = sampling
        self.seed = check_seed(seed)
        self._engine_options(check_score(score, allow_auto=True), progress, chunk_size, memory_budget)

    def params(self) -> dict:
        p = super().params()
        if isinstance(self.segmentation, np.ndarray):
            p["segmentation"] = "user label map"
        if isinstance(self.fill, np.ndarray):
            p["fill"] = "baseline picture"
        return p

    # ------------------------------------------------------------------ steps
    def sample_masks(self, k: int) -> tuple[np.ndarray, dict]:
        """(num_samples, k) uint8; row 0 is all ones (the unperturbed picture). With sampling="paired"
        row 2i + 1 is the complement of row 2i (row 1 all zeros); every prefix is a paired design."""
        n = self.draws()
        if self.sampling == "paired":
            drawn = kernels.random_binary_masks(-(-n // 2), k, p=self.keep_probability, seed=self.seed,
                                                first_all_ones=True)
            masks = np.empty((2 * drawn.shape[0], k), np.uint8)
            masks[0::2], masks[1::2] = drawn, 1 - drawn
            return masks[:n], {}
        masks = kernels.random_binary_masks(n, k, p=self.keep_probability, seed=self.seed,
                                            first_all_ones=True)
        return masks, {}

    def sample_weights(self, masks: np.ndarray) -> np.ndarray:
        if self.kernel_width is None:
            return np.ones(masks.shape[0])
        return kernels.lime_kernel_weights(masks, self.kernel_width)

    def fit(self, masks: np.ndarray, y: np.ndarray, w: np.ndarray, stderr: bool = False, units=None):
        """Weighted surrogate on (masks -> y): (importance (k,), intercept or None for a tree, weighted
        R^2), and with ``stderr`` the standard errors (k,) as a fourth item."""
        X = masks.astype(np.float64)
        y = np.asarray(y, np.float64)
        n = X.shape[0]
        if self.surrogate == "ridge":
            alpha = 1.0 if self.alpha is None else self.alpha
            coef, icpt = kernels.weighted_ridge(X, y, w, alpha=alpha)
            out = (coef, icpt, kernels.weighted_r2(X, y, w, coef, icpt))
            return out + (ridge_stderr(X, y, w, coef, icpt, alpha, units),) if stderr else out
        if self.surrogate == "linear":
            alpha = self._lasso_alpha(n)
            coef, icpt = kernels.weighted_lasso(X, y, w, alpha=alpha, max_iter=5000, tol=1e-6)
            out = (coef, icpt, kernels.weighted_r2(X, y, w, coef, icpt))
            if not stderr:
                return out
            se = bootstrap_stderr(lambda rows: kernels.weighted_lasso(X[rows], y[rows], w[rows], alpha=alpha,
                                                                      max_iter=5000, tol=1e-6)[0], n, units,
                                  seed=self.seed)  # pairs resampled together, as they were drawn
            return out + (se,)
        from sklearn.tree import DecisionTreeRegressor

        leaf = max(1, n // TREE_LEAF_FRACTION)
        tree = DecisionTreeRegressor(random_state=self.seed, min_samples_leaf=leaf)
        tree.fit(X, y, sample_weight=w)
        pred = tree.predict(X)
        r2 = _weighted_r2_of(y, pred, w)
        out = (tree.feature_importances_.astype(np.float64), None, r2)
        return out + (np.full(X.shape[1], np.nan),) if stderr else out

    def _lasso_alpha(self, n: int | None = None) -> float:
        # MATLAB's fitrlinear (behind imageLIME's "linear") defaults to lambda = 1 / n observations.
        return 1.0 / (n or self.num_samples) if self.alpha is None else float(self.alpha)

    @property
    def rank_rule(self) -> bool:  # the rank rule of num_samples="auto" (the tree has no auto)
        return self.surrogate != "tree"

    def part_maps(self, run, setup, targets, groups):
        """The surrogate fitted on each group's quarters of the draws (pairs with sampling="paired"):
        draw u is in quarter 2 (u mod 2) + (u div 2) mod 2, so quarters (0, 1) are the even draws."""
        n = run.scores.shape[0]
        masks = setup.state["masks"][:n]
        w = self.sample_weights(masks)
        units = np.arange(n) // 2 if self.sampling == "paired" else np.arange(n)
        quarter = quarter_of(units)
        if self.surrogate == "ridge":  # every group from the quarters' weighted sums: one pass, all targets
            return _ridge_groups(masks.astype(np.float64), run.scores[:, targets].astype(np.float64), w, quarter,
                                 groups, 1.0 if self.alpha is None else float(self.alpha))
        rows = [np.isin(quarter, g) for g in groups]
        return [[self.fit(masks[r], run.scores[r, t], w[r])[0] for r in rows] for t in targets]

    def aggregate(self, run, setup, targets):
        n = run.scores.shape[0]  # all drawn masks, or the prefix scored before "auto" stopped
        masks = setup.state["masks"][:n]
        w = self.sample_weights(masks)
        units = np.arange(n) // 2 if self.sampling == "paired" else None  # a pair is one draw
        out = []
        for t in targets:
            importance, intercept, r2, se = self.fit(masks, run.scores[:, t], w, stderr=True, units=units)
            extras = dict(r2=float(r2), num_samples=int(n))
            if intercept is not None:
                extras["intercept"] = float(intercept)
            part = self.feature_result(setup, importance, **extras)
            part["stderr"] = np.asarray(se, np.float32)
            out.append(part)
        return out


def _ridge_groups(X, Y, w, quarter, groups, alpha: float) -> list[list[np.ndarray]]:
    """Per target (column of Y), the weighted ridge coefficients (``kernels.weighted_ridge``, with an
    intercept) of each group of quarters, from each quarter's sums of w, w x, w y, w x x' and w x y:
    a group's normal equations are the sums of its quarters', centred on the group's weighted means."""
    k = X.shape[1]
    sums = []
    for q in range(4):
        r = quarter == q
        Xq, Yq, wq = X[r], Y[r], w[r]
        WX = Xq * wq[:, None]
        sums.append((wq.sum(), WX.sum(0), wq @ Yq, WX.T @ Xq, WX.T @ Yq))
    out = [[] for _ in range(Y.shape[1])]
    for g in groups:
        s0, s1, sy, sxx, sxy = (sum(sums[q][i] for q in g) for i in range(5))
        xm, ym = s1 / s0, sy / s0
        gram = sxx - s0 * np.outer(xm, xm) + alpha * np.eye(k)
        rhs = sxy - s0 * np.outer(xm, ym)
        try:
            coef = np.linalg.solve(gram, rhs)
        except np.linalg.LinAlgError:  # only with alpha = 0: the minimum-norm solution, as weighted_ridge
            coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        for i in range(Y.shape[1]):
            out[i].append(coef[:, i])
    return out


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
