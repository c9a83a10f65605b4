"""How far can a design or an estimator take LIME and Kernel SHAP below lime's and shap's forward passes?

Issue 11 asks for LIME (and Kernel SHAP) maps as stable as the lime package's (shap's) at 1000
samples from at most 400: a 2.5x smaller variance per forward pass for the same estimand. This section
scores, per picture, one large pool of complementary LIME pairs and a Kernel SHAP reference with ten
seeds of its sequential design (the convergence bench's setup: SLIC 49 superpixels, fill segment-mean,
the target's probability, lime's kernel of width 0.25), and reads three figures:

1. Where LIME's noise comes from. The ridge coefficients' sampling noise is driven by the residual
   r = f - (linear fit). Split r over each pair (z, complement of z) into its odd part
   (r(z) - r(z'))/2 and its even part (r(z) + r(z'))/2. Independent draws (lime's) pay for all of r;
   complementary pairs cancel the even part and pay for the odd part only, which costs two samples a
   pair. So with weights equal within a pair, pairs can cut the variance by at most
   E[r^2] / (2 E[r_odd^2]) (Covert & Lee 2021 make the same argument for Kernel SHAP). lime's kernel
   weighs z and its complement differently, so some of the even part leaks back in. shap's
   KernelExplainer samples complementary pairs already, so this bound gives Kernel SHAP nothing over it.
2. What pairs give LIME, measured: the variance of the area-weighted coefficients over disjoint
   replicates of n samples, independent draws (the pairs' first members) over paired draws.
3. Whether a learned surrogate removes what pairs leave: regression adjustment after Witter, Liu &
   Musco (2025, "Regression-adjusted Monte Carlo estimators for Shapley values and probabilistic
   values"; their Tree MSR fits XGBoost and estimates the residual by Monte Carlo). Here g is
   scikit-learn's HistGradientBoostingRegressor fitted on the run's own n samples, the residual y - g
   goes through the method's own fit (LIME's ridge, Kernel SHAP's constrained least squares), and
   g's part is computed on a large design of g alone (65,536 paired masks for LIME's projection,
   50,000 coalitions for g's Shapley values). With a coefficient c, the estimate is
   plain(y) - c x (plain(g) - g's exact part): c = 1 is the full adjustment, c = 0.5 half of it (a
   control variate's best c is Cov / Var, below 1 when g is fitted on the same few samples). Figure:
   the mean squared error of the plain estimate over the adjusted one's against the reference, for
   c = 1 and 0.5 (above 1: the adjustment helps). Kernel SHAP's figures come from the product's own
   ``shap_adjust.adjust`` (g seeded as KernelSHAP(seed=s) seeds it) and add a third, the c that
   adjust="auto" chose in each run (``shap_adjust.choose_c``), and the coverage of the 95% intervals
   that plain Kernel SHAP's and adjust="auto"'s standard errors give, against the reference.

    python -m tools.bench limits            # 3 pictures, n = 400 and 1000 (about 21 min on 2 cores)
    python -m tools.bench limits --quick    # 1 picture, small pools, n = 200 (about 35 s)
    ONNXAI_BENCH_PICTURES=camera python -m tools.bench limits   # other pictures from samples/

Cost: the forward passes (about 6 ms each on 2 cores: 24,000 LIME and 22,000 Kernel SHAP samples a
picture) and about a minute of fitting a picture.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from onnxai.methods.shap_adjust import adjust, big_design, surrogate  # the product's g and adjustment

ROOT = Path(__file__).resolve().parents[2]
PICTURES = ("chelsea", "coffee", "rocket")
POOL_SEED = 7


def _fit(Z, y, w, alpha=1.0):
    """lime's Ridge (weighted, intercept, alpha 1): the coefficients."""
    X = Z.astype(np.float64)
    mx, my = w @ X / w.sum(), w @ y / w.sum()
    Xc = X - mx
    return np.linalg.solve((Xc * w[:, None]).T @ Xc + alpha * np.eye(X.shape[1]), (Xc * w[:, None]).T @ (y - my))


def _residual(Z, y, w):
    X1 = np.c_[np.ones(len(Z)), Z.astype(np.float64)]
    c = np.linalg.solve((X1 * w[:, None]).T @ X1 + 1e-9 * np.eye(X1.shape[1]), (X1 * w[:, None]).T @ y)
    return y - X1 @ c


def _odd_even(r):
    """Mean squared odd and even parts of r over the pairs (rows 2i, 2i + 1)."""
    return float(np.mean(((r[0::2] - r[1::2]) / 2) ** 2)), float(np.var((r[0::2] + r[1::2]) / 2))


def _pool(model, x, crop, probs, t, size):
    import onnxai

    seg = onnxai.LIME(num_features=49, surrogate="ridge", fill="segment-mean").setup(model, x, crop, probs)
    m = onnxai.LIME(num_samples=size, segmentation=seg.state["segments"], surrogate="ridge", fill="segment-mean",
                    seed=POOL_SEED, score="probabilities", sampling="paired", progress=False)
    setup = m.setup(model, x, crop, probs)
    res = m._run(model, x, setup.baseline, setup.source, ends=m.end_points, kind="probabilities")
    masks = setup.state["masks"]
    return masks, res.scores[:, t].astype(np.float64), m.sample_weights(masks), m.rank_weights(setup), m.segmentation


def _variance_ratio(Z, y, w, area, n):
    """Area-weighted variance of the coefficients over disjoint replicates: independent / paired."""
    reps = len(y) // (2 * n)
    ind, par = [], []
    for s in range(reps):
        lo = 2 * n * s
        first = np.arange(lo, lo + 2 * n, 2)  # the pairs' first members: independent draws
        ind.append(_fit(Z[first], y[first], w[first]))
        rows = np.arange(lo, lo + n)
        par.append(_fit(Z[rows], y[rows], w[rows]))
    a = area / area.sum()
    return float((np.var(ind, axis=0) * a).sum() / (np.var(par, axis=0) * a).sum()), reps


ADJUST = (1.0, 0.5)  # the control variate's coefficient c: plain - c x (the method on g - g's exact part)
KS_ADJUST = ADJUST + ("auto",)  # Kernel SHAP also with KernelSHAP(adjust="auto")'s own c per run


def _mse_ratios(estimates, ref, area, cs=ADJUST):
    """Area-weighted mean squared error against ref: the plain estimate's over the adjusted one's, per n
    and per c of cs. estimates[n]: "plain" and "correction" (the method applied to g's values at the
    samples minus g's exact part), per replicate, and for c = "auto" "c", the coefficient each replicate
    chose; both methods are linear in the scores, so the adjusted estimate with coefficient c is
    plain - c x correction."""
    a = area / area.sum()
    mse = lambda v: float((((np.asarray(v) - ref) ** 2).mean(axis=0) * a).sum())

    def adjusted(e, c):
        c = np.asarray(e["c"] if c == "auto" else [c] * len(e["plain"]), np.float64)
        return np.asarray(e["plain"]) - c[:, None] * np.asarray(e["correction"])

    return {n: [mse(e["plain"]) / mse(adjusted(e, c)) for c in cs] for n, e in estimates.items()}


def _lime_adjusted(Z, y, w, area, ns, reps, k):
    """LIME: plain ridge against ridge(y - g) + the limit's projection of g (a 65,536-row paired design)."""
    import onnxai

    big = onnxai.LIME(num_samples=1 << 16, sampling="paired", seed=POOL_SEED + 1)
    BZ = big.sample_masks(k)[0]
    BW = big.sample_weights(BZ)
    half = len(y) // 2
    ref = _fit(Z[:half], y[:half], w[:half])  # replicates come from the other half
    out = {}
    for n in ns:
        out[n] = {"plain": [], "correction": []}
        for s in range(min(reps, half // n)):
            rows = np.arange(half + s * n, half + (s + 1) * n)
            g = surrogate(Z[rows], y[rows], 0)
            out[n]["plain"].append(_fit(Z[rows], y[rows], w[rows]))
            out[n]["correction"].append(_fit(Z[rows], g(Z[rows]), w[rows]) - _fit(BZ, g(BZ), BW, 1e-9))
    return _mse_ratios(out, ref, area)


def _ks_adjusted(model, x, crop, probs, t, segments, area, ns, ref_n, reps):
    """Kernel SHAP (the sequential design): plain against the product's adjustment (``shap_adjust.adjust``:
    phi(y) - c (phi(g) - g's Shapley values from a 50,000-row design), g fitted on the coalitions and both
    ends) at c = 1, 0.5 and the c that adjust="auto" chose; -> (MSE ratios per n, median auto c per n,
    (plain, auto) coverage of the 95% intervals per n)."""
    import onnxai

    from .bench_convergence import _score

    def scored(seed, n):
        m = onnxai.KernelSHAP(num_samples="auto", max_samples=n, segmentation=segments, fill="segment-mean",
                              seed=seed, score="probabilities", progress=False)
        setup, res = _score(m, model, x, crop, probs, t, "probabilities")
        return m, setup, res

    def plain_phi(m, Z, w, res, used):
        return m.solve(Z, w, res.scores[:used], res.baseline_scores, res.input_scores, [t])[:, 0]

    m, setup, res = scored(1000, ref_n)
    M = setup.state["k"]
    Z, w, used = m.prefix(M, ref_n)
    ref = plain_phi(m, Z, w, res, used)
    out = {n: {"plain": [], "correction": [], "c": []} for n in ns}
    for s in range(1, reps + 1):
        m, setup, res = scored(s, max(ns))
        big = big_design(M, s + 1)  # what KernelSHAP(seed=s, adjust=...) reads g's Shapley values from
        for n in ns:
            Z, w, used = m.prefix(M, n)
            scores = res.scores[:used]
            plain = plain_phi(m, Z, w, res, used)
            phi, residual, c = adjust(m.solve, Z, w, scores, res.baseline_scores, res.input_scores, [t], "auto", s,
                                      big, m.design(Z)[0], stderr=m.stderr)  # the product's, its c chosen per run
            out[n]["plain"].append(plain)
            out[n]["correction"].append((plain - phi[:, 0]) / c[0])
            out[n]["c"].append(float(c[0]))
            # 95% intervals: plain Kernel SHAP's standard errors, and auto's from its residual scores
            se = m.stderr(Z, w, scores, res.baseline_scores, res.input_scores, plain[:, None], [t])[:, 0]
            out[n].setdefault("cover plain", []).append(np.abs(plain - ref) <= 1.96 * se)
            se = m.stderr(Z, w, *residual, [0])[:, 0]
            out[n].setdefault("cover auto", []).append(np.abs(phi[:, 0] - ref) <= 1.96 * se)
    cover = {n: (float(np.mean(out[n]["cover plain"])), float(np.mean(out[n]["cover auto"]))) for n in ns}
    return _mse_ratios(out, ref, area, KS_ADJUST), {n: float(np.median(out[n]["c"])) for n in ns}, cover


def _pair(ratios) -> str:
    return "/".join(f"{r:.2f}" for r in ratios) + "x"


def run(quick: bool = False) -> None:
    import onnxai

    size = 2400 if quick else 24000
    n_var = 200 if quick else 400  # the budget; replicates of it give the variance ratio
    ns = [200] if quick else [400, 1000]
    reps = 3 if quick else 10
    ks_ref = 1200 if quick else 12000
    which = os.environ.get("ONNXAI_BENCH_PICTURES")  # names, e.g. camera (any picture in samples/)
    pictures = which.split(",") if which else (PICTURES[:1] if quick else PICTURES)
    model = onnxai.load(str(ROOT / "models" / "efficientnet_lite0.onnx"), providers="cpu")
    print(f"limits: {len(pictures)} picture(s); LIME: a pool of {size} paired samples each (seed {POOL_SEED}); Kernel "
          f"SHAP: a {ks_ref}-sample reference and {reps} seeds of its sequential design; SLIC 49, fill segment-mean, "
          f"probabilities. The issue's goal: 2.5x fewer samples than lime / shap for the same stability")
    print("picture       linear R2  odd share  pairs can give  pairs give, n=%d (reps)" % n_var
          + "".join(f"  adj. LIME n={n}" for n in ns) + "".join(f"      adj. KS n={n} (auto c)" for n in ns) + "".join(f"  KS 95% cover n={n}" for n in ns))
    t0 = time.perf_counter()
    for name in pictures:
        x, crop = model.prepare(str(ROOT / "samples" / f"{name}.png"))
        probs = model.run_batch(x)[0]
        t = int(np.argmax(probs))
        Z, y, w, area, segments = _pool(model, x, crop, probs, t, size)
        r = _residual(Z, y, w)
        odd, even = _odd_even(r)
        total = float(np.sum(w * (r - w @ r / w.sum()) ** 2) / w.sum())
        var_y = float(np.sum(w * (y - w @ y / w.sum()) ** 2) / w.sum())
        gain, nrep = _variance_ratio(Z, y, w, area, n_var)
        lime_adj = _lime_adjusted(Z, y, w, area, ns, reps, Z.shape[1])
        ks_adj, ks_c, ks_cover = _ks_adjusted(model, x, crop, probs, t, segments, area, ns, ks_ref, reps)
        print(f"{name:<13} {1 - total / var_y:9.3f} {odd / (odd + even):10.2f} {(odd + even) / (2 * odd):14.2f}x "
              + f"{gain:.2f}x ({nrep})".rjust(28) + "".join(_pair(lime_adj[n]).rjust(17) for n in ns)
              + "".join(f"{_pair(ks_adj[n])} ({ks_c[n]:.2f})".rjust(30) for n in ns)
              + "".join(f"{ks_cover[n][0]:.2f}/{ks_cover[n][1]:.2f}".rjust(19) for n in ns) + f"   ({model.label(t)})")
    print("(odd share: the part of the linear fit's residual energy that complementary pairs keep (they cancel the "
          "rest); 'pairs can give': (odd + even) / (2 odd), the most pairs can cut the variance with weights equal "
          "within a pair; 'pairs give': variance ratio independent / paired at n, measured; 'adj.': regression "
          "adjustment with a gradient-boosted surrogate fitted on the n samples, the mean squared error of the plain "
          "estimate over the adjusted one's against the reference, with the surrogate's coefficient c = "
          + " / ".join(f"{c:g}" for c in ADJUST) + ", and for Kernel SHAP also the c KernelSHAP(adjust='auto') chose in "
          "each run (its median in brackets) (above 1: the adjustment helps; 2.5 is the goal); 'KS 95% cover': the "
          "share of features whose 95% interval (phi +- 1.96 stderr) held the reference's value, plain Kernel SHAP / "
          "adjust='auto' (the reference's own noise, about n / reference of the run's variance, counts against it))")
    print(f"(total {time.perf_counter() - t0:.0f} s)")
