"""Kernel SHAP (Lundberg & Lee 2017) for pictures and tables, on the perturb-and-score engine.

Features are superpixels / grid cells for pictures (as LIME's) and columns for tables. Coalitions
come from ``kernels.coalitions.shapley_coalitions`` (Shapley-kernel weights per size, whole sizes enumerated
with complements while the budget allows, the rest sampled in complementary pairs, seeded); the
weighted least squares is solved with the efficiency constraint
sum(phi) = f(x) - f(baseline) exactly, for every class from the same forward passes.

    score          what is explained: "probabilities" (default), "logits" or "raw" model outputs
                   (``Explanation.score`` stays the target's probability; extras["prediction"] is
                   f(x) in this score)
    num_samples    coalitions scored (None = shap's "auto": 2M + 2048, at most 2^M - 2); the empty
                   and the full coalition are scored besides, in the same engine run
    sampling       how the coalitions beyond the enumerated sizes are chosen:
                   "stratified" (default): the leftover budget is split over the remaining sizes in
                   proportion to their Shapley-kernel mass (largest remainder, in complementary
                   pairs), subsets drawn uniformly without replacement within each size, each row
                   weighing (mass of its size) / (rows drawn at that size): no size-allocation noise,
                   no repeats, exactly num_samples rows; about half the RMSE of "shap" at equal
                   budget on the bench's 12-feature forest (tools/bench/bench_shap.py).
                   "shap": the shap package's KernelExplainer design, row for row: each pair's size
                   drawn at random from the remaining kernel mass, repeats merged into weights.
                   "leverage": Leverage SHAP (Musco & Witter, ICLR 2025): the rows a size gets are
                   proportional to its leverage score once efficiency is projected out, which is the
                   same for every size 1..M-1, so the leftover budget is spread evenly over sizes
                   rather than by kernel mass; otherwise as "stratified" (distinct complementary
                   pairs, sizes that fit enumerated, each row weighing its size's kernel mass over the
                   rows drawn at it, so the same Shapley values are targeted). Measured (bench_shap
                   designs): 11-19% lower RMSE than "stratified" on a 50-feature game at 2M..20M rows;
                   on 12 features a tie (forest) or +-10%, so not the default. Sampling applies to a
                   numeric num_samples; "auto" always uses the sequential design below.
    adjust         None (default), a coefficient c in (0, 1] or "auto": regression adjustment (pictures;
                   num_samples="auto" stops on plain Kernel SHAP): a gradient-boosted surrogate g of the
                   scores, fitted on the run's coalitions, is a control variate, phi = phi(y) - c (phi(g)
                   - g's Shapley values from a 50,000-row design of g alone); the same Shapley values,
                   less noise where g follows the scores. "auto" picks c per class from the run's own
                   variances, at least 0.5 (``shap_adjust.choose_c``); the c used is in
                   ``extras["adjust_c"]``. Measured on the shipped model's six pictures: 0.5 cut the error
                   1.1-3.1x, auto 1.06-5.4x (about 1.4 s of fitting a class at 1000 coalitions)
    l1_reg         False (default), "num_features(k)", "aic", "bic" or a float alpha: select features
                   by L1 first as the shap package does, then solve the constrained problem on them
    pictures:      num_features, segmentation, fill (see methods.base: "mean", "blur", a grey value,
                   a baseline picture, ...): a hidden superpixel shows the fill
    tables:        background: training rows (summarised to ``background_size`` rows by k-means, as
                   shap.kmeans, or by "sample"), or a tabular.Background; a hidden column takes the
                   background's values and the model output is the weighted average over background
                   rows. The expected value E[f(background)] is the base value.

    num_samples="auto", tolerance, max_samples: coalitions are scored in a design every prefix of which
                   is a Kernel SHAP design (``kernels.coalitions.sequential_coalitions``: sizes 1 and
                   M - 1 enumerated, then independent complementary pairs) until, for pictures, the
                   phi of the design's quarters and halves (``part_maps``) predict a rank correlation of the
                   map with its limit of 1 - tolerance (default 0.05), and for tables, per row, every
                   standard error is below tolerance (default 0.1) x the largest |phi|

Standard errors (``Explanation.stderr`` per feature, ``TabularExplanation.stderr`` (r, M, C)): the delta-method
variance of the constrained weighted least squares of Covert & Lee (AISTATS 2021, "Improving KernelSHAP",
sec. 4), with complementary pairs as the sampling unit (paired sampling), size strata and their sampled
fractions as drawn, enumerated sizes exact, and each pair's residuals divided by one minus its leverage
(the jackknife's small-sample correction, HC3; ``kernels.variance.shapley_stderr``). The sum of phi has
standard error 0 (efficiency is exact).

``explain(model, picture, target)`` returns Explanations like LIME's (importance = phi per superpixel,
extras: base_value, prediction, efficiency_gap); ``explain(model, rows, target)`` on a tabular model
returns one ``tabular.TabularExplanation`` for all rows and all classes.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .. import engine
from .. import tables as tabular
from .._log import note
from ..errors import InputError
from ..kernels.coalitions import (SAMPLING, default_nsamples, sequential_coalitions, sequential_weights,
                                  shapley_coalitions)
from ..kernels.shapley import determines, shapley_solve
from ..kernels.variance import shapley_stderr
from .base import AUTO_FIRST, AUTO_MAX_SAMPLES, check_budget, check_count, check_score, check_seed, deprecated_alias
from .budget import quarter_of
from .shap_adjust import adjust as adjusted_phi
from .shap_adjust import big_design, check_adjust
from .superpixels import SuperpixelMethod

_NUM_FEATURES = "num_features("  # l1_reg="num_features(k)", shap's spelling


class KernelSHAP(SuperpixelMethod):
    name = "kernel-shap"
    inputs = "both"

    def __init__(
        self,
        num_samples: int | None = 1000,
        sampling: str = "stratified",
        num_features: int = 50,
        segmentation="slic",
        fill="mean",
        l1_reg=False,
        background=None,
        background_size: int = 10,
        summarise: str = "kmeans",
        feature_names=None,
        seed: int = 0,
        score: str = "auto",
        progress: bool | None = None,
        memory_budget: int = engine.DEFAULT_MEMORY_BUDGET,
        chunk_size: int | None = None,
        nsamples: int | None = None,
        kind: str | None = None,
        tolerance: float | None = None,
        max_samples: int = AUTO_MAX_SAMPLES,
        adjust: float | str | None = None,
    ):
        num_samples = deprecated_alias("KernelSHAP", "nsamples", "num_samples", nsamples, num_samples, 1000)
        score = deprecated_alias("KernelSHAP", "kind", "score", kind, score, "auto")
        self.num_samples, self.tolerance, self.max_samples = check_budget(num_samples, tolerance, max_samples,
                                                                          allow_none=True)
        self.num_features = check_count(num_features, "num_features")
        _check_l1(l1_reg)
        if sampling not in SAMPLING:
            raise InputError(f"sampling must be one of {', '.join(map(repr, SAMPLING))}; got {sampling!r}")
        self.sampling = sampling
        self.segmentation = segmentation
        self.fill = fill
        self.l1_reg = False if l1_reg is None else l1_reg
        self.background = background
        self.background_size = check_count(background_size, "background_size")
        self.summarise = summarise
        self.feature_names = feature_names
        self.seed = check_seed(seed)
        self._engine_options(check_score(score, allow_raw=True, allow_auto=True), progress, chunk_size, memory_budget)
        self._coalitions: dict = {}
        self._adjust = check_adjust(adjust)
        if self._adjust is not None and l1_reg not in (False, None, 0):
            raise InputError(f"adjust (the regression adjustment) works with l1_reg=False; got l1_reg={l1_reg!r}")
        self._big: dict = {}  # M -> the large design the adjustment reads g's Shapley values from
        self._summary = None  # (the background it was made from, its tabular.Background)

    def params(self) -> dict:
        p = super().params()
        if p["background"] is not None:
            p["background"] = "given"
        if self._adjust is not None:
            p["adjust"] = self._adjust
        return p

    # ------------------------------------------------------------------ shared steps
    def coalitions(self, M: int) -> tuple[np.ndarray, np.ndarray]:
        """(masks (n, M) uint8, weights (n,)) for M features; cached per M. With num_samples="auto"
        the max_samples rows of the sequential design (weights of all of them)."""
        if M not in self._coalitions:
            if self.auto:
                d = sequential_coalitions(M, self.max_samples, self.seed)
                self._coalitions[M] = (d["masks"], sequential_weights(d, d["masks"].shape[0]), d)
            else:
                n = default_nsamples(M) if self.num_samples is None else self.num_samples
                self._coalitions[M] = shapley_coalitions(M, n, self.seed, self.sampling) + (None,)
        return self._coalitions[M][:2]

    def prefix(self, M: int, n: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The design of the first n scored rows: (masks, weights, rows used), whole pairs only."""
        masks, weights, d = self._coalitions[M]
        if d is None or n >= masks.shape[0]:
            return masks[:n], weights[:n], min(n, masks.shape[0])
        e = d["enumerated"]
        used = n if n <= e else e + 2 * ((n - e) // 2)
        return masks[:used], sequential_weights(d, used), used

    def design(self, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        """(units, strata, sampled fraction per stratum) of a coalition design for the standard errors:
        a row and the complement right after it are one unit; a stratum is a size s <= M / 2 with its
        complement size, -1 where every coalition of it is in the design (no sampling variance)."""
        n, M = masks.shape
        comp = np.zeros(n, np.bool_)
        if n > 1:
            comp[1:] = (masks[1:] + masks[:-1] == 1).all(axis=1)
        units = np.empty(n, np.int64)
        u, i = 0, 0
        while i < n:
            units[i] = u
            if i + 1 < n and comp[i + 1]:
                units[i + 1] = u
                i += 1
            u, i = u + 1, i + 1
        size = masks.sum(axis=1).astype(np.int64)
        stratum = np.minimum(size, M - size)
        count = np.array([float(math.comb(M, s) if 2 * s == M else 2 * math.comb(M, s)) if s else 1.0
                          for s in range(M // 2 + 1)])
        drawn = np.bincount(stratum, minlength=M // 2 + 1)
        full = drawn >= count
        fraction = {}
        if self.auto:  # sequential design: sizes 1 and M - 1 enumerated, then pairs drawn with replacement
            e = self._coalitions[M][2]["enumerated"] if M in self._coalitions else 0
            strata = np.zeros(n, np.int64)
            strata[:e] = -1
            fraction[0] = 0.0
        elif self.sampling == "shap":  # drawn with replacement: one stratum, sizes random
            strata = np.where(full[stratum], -1, 0)
            fraction[0] = 0.0
        else:  # "stratified", "leverage": distinct pairs drawn without replacement within each size
            strata = np.where(full[stratum], -1, stratum)
            for h in np.unique(strata[strata >= 0]):
                fraction[int(h)] = min(1.0, drawn[h] / count[h])
        return units, strata, fraction

    def stderr(self, masks, weights, scores, fnull, fx, phi, classes, leverage: bool = True) -> np.ndarray:
        """Standard errors (M, len(classes)) of ``solve``'s phi (module docstring; leverage: ``shapley_stderr``)."""
        M = masks.shape[1]
        if masks.shape[0] == 0 or M < 2:
            return np.zeros((M, len(classes)))
        if self.l1_reg not in (False, None, 0):
            return np.full((M, len(classes)), np.nan)  # after a selection step the delta method does not apply
        y = np.asarray(scores, np.float64)[:, classes] - np.asarray(fnull, np.float64)[classes]
        units, strata, fraction = self.design(masks)
        return shapley_stderr(masks, weights, y, phi, units, strata, fraction, leverage)

    def note_underdetermined(self, masks, weights) -> None:
        """Say (once) when the scored coalitions do not determine phi (``kernels.shapley.determines``)."""
        n, M = masks.shape
        if n and not determines(masks, weights):
            note(f"kernel-shap: {n} coalitions do not determine the values of {M} features; the values are the minimum-"
                 f"norm choice among many, without standard errors (NaN). Give {2 * M}+ samples or fewer features")

    def solve(self, masks, weights, y, fnull, fx, classes) -> np.ndarray:
        """phi (M, len(classes)): y (n, C) scores of the coalitions, fnull / fx (C,) scores of the ends."""
        y = np.asarray(y, np.float64)[:, classes] - np.asarray(fnull, np.float64)[classes]
        delta = np.asarray(fx, np.float64)[classes] - np.asarray(fnull, np.float64)[classes]
        M = masks.shape[1]
        if self.l1_reg is False or self.l1_reg == 0 or M < 2 or masks.shape[0] == 0:
            if masks.shape[0] == 0 or M < 2:
                return np.repeat(delta[None] / max(M, 1), M, axis=0) if M else np.zeros((0, len(classes)))
            return shapley_solve(masks, weights, y, delta)
        out = np.zeros((M, len(classes)))
        for c in range(len(classes)):
            keep = _l1_select(masks, weights, y[:, c], delta[c], self.l1_reg)
            if keep.size == 0:
                continue
            out[keep, c] = shapley_solve(masks[:, keep], weights, y[:, c:c + 1], delta[c:c + 1])[:, 0]
        return out

    # ------------------------------------------------------------------ entry point
    def explain(self, model, inputs, target=None, cropped: bool = False):
        if model.input.is_image:
            return super().explain(model, inputs, target, cropped=cropped)
        return self.explain_table(model, inputs, target)

    # ------------------------------------------------------------------ pictures
    def sample_masks(self, k: int) -> tuple[np.ndarray, dict]:
        masks, weights = self.coalitions(k)
        return masks, {"weights": weights}

    def setup(self, model, x, crop, probs):
        out = super().setup(model, x, crop, probs)
        if self.auto:  # the first check after the enumerated sizes and as many sampled pairs
            out.state["first"] = max(AUTO_FIRST, 4 * out.state["k"])
        return out

    rank_rule = True  # pictures; a table row keeps the error rule (its features often tie at 0)

    def part_maps(self, run, setup, targets, groups):
        """phi from each group's quarters of the sequential design so far: the enumerated pairs (sizes 1
        and M - 1) and the sampled pairs dealt in turn (pair u to quarter 2 (u mod 2) + (u div 2) mod 2),
        each group weighting its enumerated rows by the enumerated sizes' mass and its sampled rows by
        the rest (shared rows would make the parts agree more than the samples do)."""
        M = setup.state["k"]
        masks, _, used = self.prefix(M, run.scores.shape[0])
        d = self._coalitions[M][2]
        e = d["enumerated"]
        fnull = run.baseline_scores.astype(np.float64)
        fx = run.input_scores.astype(np.float64)
        pair = np.r_[np.arange(e) // 2, e // 2 + np.arange(used - e) // 2]
        quarter = quarter_of(pair)
        out = []
        for g in groups:
            rows = np.flatnonzero(np.isin(quarter, g))
            enum = rows < e
            w = np.empty(rows.size)
            w[enum] = d["mass"] / max(int(enum.sum()), 1)
            w[~enum] = (1.0 - d["mass"]) / max(int((~enum).sum()), 1)
            out.append(self.solve(masks[rows], w, run.scores[:used][rows], fnull, fx, list(targets)))
        return [[phi[:, i] for phi in out] for i in range(len(targets))]

    def _plain(self, run, setup, targets):
        """(masks, weights, rows used, phi, stderr) of plain Kernel SHAP on the run's scored prefix."""
        masks, weights, used = self.prefix(setup.state["k"], run.scores.shape[0])
        y, f0, f1, t = run.scores[:used], run.baseline_scores, run.input_scores, list(targets)
        phi = self.solve(masks, weights, y, f0, f1, t)
        return masks, weights, used, phi, self.stderr(masks, weights, y, f0, f1, phi, t)

    def estimate(self, run, setup, targets):
        """The auto check's figures as ``aggregate`` stores them (float32), unpainted; plain even with adjust."""
        phi, se = self._plain(run, setup, targets)[3:]
        return list(phi.T.astype(np.float32)), list(se.T.astype(np.float32))

    def aggregate(self, run, setup, targets):
        fnull = run.baseline_scores.astype(np.float64)
        fx = run.input_scores.astype(np.float64)
        if self._adjust is None:
            masks, weights, used, phi, se = self._plain(run, setup, targets)
        else:  # regression-adjusted (methods.shap_adjust); errors from the residual scores
            M = setup.state["k"]
            masks, weights, used = self.prefix(M, run.scores.shape[0])
            if M not in self._big:
                self._big[M] = big_design(M, self.seed + 1)
            phi, (r_scores, r_null, r_x, r_phi), cs = adjusted_phi(
                self.solve, masks, weights, run.scores[:used], fnull, fx, targets, self._adjust, self.seed,
                self._big[M], self.design(masks)[0], stderr=self.stderr)
            se = self.stderr(masks, weights, r_scores, r_null, r_x, r_phi, list(range(len(targets))))
        self.note_underdetermined(masks, weights)
        out = []
        for i, t in enumerate(targets):
            importance = phi[:, i]
            part = self.feature_result(
                setup, importance, base_value=float(fnull[t]), prediction=float(fx[t]),
                num_samples=int(used), efficiency_gap=float(importance.sum() - (fx[t] - fnull[t])))
            part["stderr"] = se[:, i].astype(np.float32)
            if self._adjust is not None:
                part.setdefault("extras", {})["adjust_c"] = float(cs[i])
            out.append(part)
        return out

    # ------------------------------------------------------------------ tables
    def background_for(self, model, X_rows) -> tabular.Background:
        """The summarised background (computed once per given background; ``self.background`` is kept)."""
        bg = self.background
        if bg is None:
            raise InputError("Kernel SHAP for tables needs a background data set: background=training rows "
                             "(or --background train.csv)")
        if isinstance(bg, tabular.Background):
            return bg
        if self._summary is not None and self._summary[0] is bg:
            return self._summary[1]
        data = bg
        if isinstance(data, (str,)) or hasattr(data, "__fspath__"):
            data, _ = tabular.read_table(data, expect=tabular.model_width(model))
        data = np.asarray(data, np.float64)
        if data.ndim != 2 or data.shape[1] != X_rows.shape[1]:
            raise InputError(f"the background has shape {data.shape} but the rows have {X_rows.shape[1]} columns")
        if not np.isfinite(data).all():
            data = np.where(np.isfinite(data), data, np.nanmean(data, axis=0))
        self._summary = (bg, tabular.summarise(data, self.background_size, self.summarise, self.seed))
        return self._summary[1]

    def explain_table(self, model, X, target=None, rows=None) -> tabular.TabularExplanation:
        """Shapley values of every row of X ((r, M) array or a CSV path) for every class."""
        t0 = time.perf_counter()
        if self._adjust is not None:
            raise InputError("adjust (the regression adjustment) is for pictures; leave it None for tables")
        X, names = tabular.table_rows(model, X, self.feature_names)
        if not np.isfinite(X).all():
            raise InputError("the rows to explain contain empty or NaN cells; fill them first")
        bg = self.background_for(model, X)
        r, M = X.shape
        score = "probabilities" if self.score == "auto" else self.score  # tables: no saturation switch
        preds = model.scores(X, score).astype(np.float64)
        fnull = (model.scores(bg.data, score).astype(np.float64) * bg.weights[:, None]).sum(axis=0)
        C = preds.shape[1]
        values = np.zeros((r, M, C))
        stderr = np.zeros((r, M, C))
        forward = engine_s = 0.0
        used, stopped = [], []
        dtype = model.input.dtype
        background = np.ascontiguousarray(bg.data, dtype=dtype)
        for i in range(r):
            varying = np.flatnonzero((bg.data != X[i][None]).any(axis=0))  # shap: others get phi = 0
            Mv = varying.size
            if Mv <= 1:
                if Mv == 1:
                    values[i, varying[0]] = preds[i] - fnull
                used.append(0)
                continue
            masks_v, weights = self.coalitions(Mv)
            masks = masks_v
            if Mv != M:
                masks = np.ones((masks_v.shape[0], M), np.uint8)
                masks[:, varying] = masks_v
            source = engine.TableCoalitions(masks, background, bg.weights)
            classes = list(range(C))

            def estimate(run, Mv=Mv):
                mv, wv, n_used = self.prefix(Mv, run.scores.shape[0])
                sc = run.scores[:n_used]
                phi = self.solve(mv, wv, sc, run.baseline_scores, run.input_scores, classes)
                se = self.stderr(mv, wv, sc, run.baseline_scores, run.input_scores, phi, classes)
                return phi, se, n_used

            check = None
            if self.auto:
                check = self.auto_check(lambda run: tuple(list(a.T) for a in estimate(run)[:2]), max(AUTO_FIRST, 4 * Mv))
            res = self._run(model, np.ascontiguousarray(X[i:i + 1], dtype=dtype), None, source, check=check, kind=score)
            forward += res.forward_s
            engine_s += res.total_s
            phi, se, n_used = estimate(res)
            self.note_underdetermined(*self.prefix(Mv, n_used)[:2])
            values[i][varying] = phi
            stderr[i][varying] = se
            used.append(int(n_used))
            stopped.append(res.stopped)
        targets = tabular.resolve_row_targets(model, preds, target)
        gap = float(np.abs(values.sum(axis=1) - (preds - fnull[None])).max()) if r else 0.0
        extras = {"num_samples": used, "background_rows": int(bg.data.shape[0]), "efficiency_gap": gap,
                  "score": score}
        if self.auto:
            extras.update(stopped=stopped, tolerance=self.auto_tolerance(ranks=False),
                          max_samples=self.max_samples)
        return tabular.TabularExplanation(
            values=values, base_values=fnull, predictions=preds, data=X, feature_names=names, stderr=stderr,
            class_names=tabular.class_names(model), method=self.name,
            rows=list(range(r)) if rows is None else list(rows), targets=targets, params=self.params(),
            extras=extras,
            timings={"total": time.perf_counter() - t0, "forward": forward, "engine": engine_s})


def _check_l1(l1_reg):
    if l1_reg is False or l1_reg is None or l1_reg in ("aic", "bic"):
        return
    if isinstance(l1_reg, str) and l1_reg.startswith(_NUM_FEATURES) and l1_reg.endswith(")") \
            and l1_reg[len(_NUM_FEATURES):-1].isdigit():
        return
    if isinstance(l1_reg, (int, float)) and not isinstance(l1_reg, bool) and 0 <= l1_reg < math.inf:
        return
    raise InputError(f"l1_reg must be False, 'num_features(k)', 'aic', 'bic' or a number >= 0; got {l1_reg!r}")


def _l1_select(masks, weights, y, delta, l1_reg) -> np.ndarray:
    """Feature indices an L1 path keeps, on shap's augmented problem (both ends of each coalition)."""
    from sklearn.linear_model import Lasso, LassoLarsIC, lars_path

    M = masks.shape[1]
    z = masks.astype(np.float64)
    s = z.sum(axis=1)
    w_aug = np.hstack((weights * (M - s), weights * s))
    sw = np.sqrt(w_aug)
    y_aug = np.hstack((y, y - delta)) * sw
    X_aug = sw[:, None] * np.vstack((z, z - 1))
    if isinstance(l1_reg, str) and l1_reg.startswith(_NUM_FEATURES):
        k = int(l1_reg[len(_NUM_FEATURES):-1])
        return np.sort(lars_path(X_aug, y_aug, max_iter=k)[1]).astype(np.int64)
    if l1_reg in ("aic", "bic"):
        scale = X_aug.std(axis=0)
        scale[scale == 0] = 1
        coef = LassoLarsIC(criterion=l1_reg).fit(X_aug / scale, y_aug).coef_
        return np.flatnonzero(coef)
    return np.flatnonzero(Lasso(alpha=float(l1_reg)).fit(X_aug, y_aug).coef_)
