"""Convergence per forward pass: Spearman correlation of each sampled map with a long reference run.

For each picture, one fixed segmentation (SLIC, 49 superpixels, fill "segment-mean") is used by every
LIME and Kernel SHAP row, onnxai's and the packages'. For each method and design: the Spearman
correlation of the map at n = 125 ... 2000 samples with a reference of the same method (``ref``
samples, seed 1000), mean/min over seeds; "n 0.95": the smallest n from which the mean over seeds
stays >= 0.95 (on a geometric grid of n, 12% steps, for the prefix-consistent designs; on n = 125 ...
2000 otherwise). Then num_samples="auto" (default tolerance, every seed; RISE seed 1): the median
samples it used against the samples the mean curve needed, and the end-to-end seconds to a map of Spearman >= 0.95 for
onnxai (auto, at most 4000 samples) against the lime package (``LimeImageExplainer.explain_instance``, batch_size 64) and
shap.KernelExplainer (l1_reg=False), each at the n it needed.

Why it is cheap enough to run: every reference is scored once per picture and method (not per seed);
prefix-consistent designs (LIME's masks, independent or paired; Kernel SHAP's sequential design; RISE's
masks, independent or Sobol) are scored once at the largest n and fitted on prefixes (the map at n is
bit for bit the one a run of n samples gives); the lime package's surrogate (``LimeBase``) is fitted
on the very masks and scores of onnxai's independent LIME draw (lime's own draw has the same
distribution: every feature on with probability 1/2, row 0 all ones), against its own reference
fitted on the reference masks. Only Kernel SHAP's stratified design and shap are run at each n.

    python -m tools.bench convergence           # 4 pictures, n up to 2000, 3 seeds, 5000-sample references
    python -m tools.bench convergence --quick   # 1 picture, n up to 250, 2 seeds, 300-sample references, auto at most 500
    ONNXAI_BENCH_REF=20000 ONNXAI_BENCH_PICTURES=chelsea python -m tools.bench convergence   # the issue's reference

Forward passes are the whole cost (about 6 ms each for EfficientNet-Lite0 on 2 cores): per picture
about 3 x ref + 30 x max(n) + the autos. The issue asks for 20,000-sample references; 5000 is the
default so that the four pictures fit in ~10 minutes on 2 cores (set ONNXAI_BENCH_REF). A reference of
R samples is itself noisy, so Spearman against it saturates below 1 as n approaches R.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

import onnxai
from onnxai import engine
from onnxai.methods.budget import AUTO_RANK_TOLERANCE

ROOT = Path(__file__).resolve().parents[2]
REF_SEED = 1000
TARGET = 0.95


class _Run:
    def __init__(self, scores, fx=None, fnull=None):
        self.scores, self.input_scores, self.baseline_scores = scores, fx, fnull


def _rho(a, b):
    return float(spearmanr(np.ravel(a), np.ravel(b))[0])


def _score(method, model, x, crop, probs, t, kind):
    setup = method.setup(model, x, crop, probs)
    res = method._run(model, x, setup.baseline, setup.source, ends=method.end_points, kind=kind)
    return setup, res


def _prefix_fn(method, setup, res, t):
    """n -> the method's map (per feature, or per pixel for RISE) from the first n scored samples."""
    if isinstance(method, onnxai.RISE):
        masks = setup.state["masks"]
        def fn(n):
            w = np.zeros((masks.n, 1))
            w[:n, 0] = res.scores[:n, t]
            return masks.fold(w)[0] / n

        return fn
    if isinstance(method, onnxai.LIME):
        m = setup.state["masks"]
        w = method.sample_weights(m)
        return lambda n: method.fit(m[:n], res.scores[:n, t], w[:n])[0]
    return lambda n: method.aggregate(_Run(res.scores[:n], res.input_scores, res.baseline_scores), setup, [t])[0][
        "importance"]


def _lime_base_fn(masks, scores, t, seed):
    """n -> the lime package's ridge surrogate (LimeBase, kernel width 0.25, all features) on the first n."""
    from lime import lime_base
    from sklearn.metrics import pairwise_distances

    k = masks.shape[1]
    dist = pairwise_distances(masks, masks[0].reshape(1, -1), metric="cosine").ravel()
    base = lime_base.LimeBase(lambda d: np.sqrt(np.exp(-(d ** 2) / 0.25 ** 2)), random_state=seed)

    def fn(n):
        exp = base.explain_instance_with_data(masks[:n], scores[:n], dist[:n], t, k, feature_selection="none")
        v = np.zeros(k)
        for f, c in exp[1]:
            v[f] = c
        return v

    return fn


def _lime_image_seconds(model, crop, segments, t, n, kind):
    """End to end: lime's LimeImageExplainer on the crop, its own draw, segment-mean fill (hide_color=None)."""
    from lime import lime_image

    def classifier_fn(images):
        batch = np.concatenate([model.preprocess.normalise(im.astype(np.uint8)) for im in images])
        return model.scores(batch, kind=kind)

    t0 = time.perf_counter()
    lime_image.LimeImageExplainer(kernel_width=0.25, random_state=1).explain_instance(
        crop, classifier_fn, labels=(t,), top_labels=None, hide_color=None, num_samples=n, batch_size=64,
        segmentation_fn=lambda im: segments, random_seed=1)
    return time.perf_counter() - t0


def _shap(model, x, segments, baseline, t, n, seed, kind):
    import shap

    k = int(segments.max()) + 1

    def f(z):
        res = engine.run(model, x, baseline, engine.FeatureMasks(np.ascontiguousarray(z, np.uint8), segments), kind=kind)
        return res.scores[:, t]

    np.random.seed(seed)
    ex = shap.KernelExplainer(f, np.zeros((1, k)))
    t0 = time.perf_counter()
    v = np.asarray(ex.shap_values(np.ones((1, k)), nsamples=n, l1_reg=False, silent=True)).reshape(-1)
    return v, time.perf_counter() - t0


def _reach(curve: dict) -> int | None:
    """Smallest n from which the mean Spearman stays >= TARGET."""
    ns = sorted(curve)
    for i, n in enumerate(ns):
        if all(np.mean(curve[m]) >= TARGET for m in ns[i:]):
            return n
    return None


def _grid(ns):
    g, n = set(ns), 100.0
    while n < max(ns):
        g.add(int(round(n)))
        n *= 1.12
    return sorted(g)


def run(quick: bool = False) -> None:
    ns = [125, 250] if quick else [125, 250, 500, 1000, 2000]
    seeds = [1, 2] if quick else [1, 2, 3]
    ref_n = int(os.environ.get("ONNXAI_BENCH_REF", 300 if quick else 5000))
    pictures = sorted((ROOT / "samples").glob("*.png"))
    which = os.environ.get("ONNXAI_BENCH_PICTURES", "1" if quick else "4")  # a count, or names: chelsea,coffee
    pictures = pictures[: int(which)] if which.isdigit() else [p for p in pictures if p.stem in which.split(",")]
    auto_max = 500 if quick else 4000  # RISE rarely converges at 0.1; cap its cost
    model = onnxai.load(str(ROOT / "models" / "efficientnet_lite0.onnx"), providers="cpu")
    grid = _grid(ns)
    print(f"convergence: n={ns}, seeds={seeds}, reference={ref_n} samples (seed {REF_SEED}), {len(pictures)} "
          f"picture(s), SLIC 49 superpixels fixed per picture, fill segment-mean (RISE: its own masks, fill zero)")
    t_all = time.perf_counter()
    autos, e2e = [], []
    for pic in pictures:
        x, crop = model.prepare(str(pic))
        probs = model.run_batch(x)[0]
        t = int(np.argmax(probs))
        seg = onnxai.LIME(num_features=49, surrogate="ridge", fill="segment-mean").setup(model, x, crop, probs)
        segments, baseline = seg.state["segments"], seg.baseline
        kind = onnxai.LIME(surrogate="ridge").resolve_score(probs, [t])[0]
        print(f"\n{pic.name}: target {model.label(t)!r} p={probs[t]:.3f}, score {kind}, "
              f"{int(segments.max()) + 1} superpixels")
        lime_m = lambda s, n, **kw: onnxai.LIME(num_samples=n, segmentation=segments, surrogate="ridge",
                                                fill="segment-mean", seed=s, score=kind, **kw)
        ks_m = lambda s, n, **kw: onnxai.KernelSHAP(num_samples=n, segmentation=segments, fill="segment-mean",
                                                    seed=s, score=kind, **kw)
        rise_m = lambda s, n, **kw: onnxai.RISE(num_samples=n, seed=s, score=kind, **kw)
        families = [  # (row name, factory, options, reference row, prefix-consistent)
            ("onnxai lime ridge (independent)", lime_m, {"sampling": "independent"}, "lime"),
            ("onnxai lime ridge (paired)", lime_m, {"sampling": "paired"}, "lime"),
            ("onnxai kernel-shap (sequential)", ks_m, {}, "ks"),
            ("onnxai rise (independent)", rise_m, {"sampling": "independent"}, "rise"),
            ("onnxai rise (sobol)", rise_m, {"sampling": "sobol"}, "rise"),
        ]
        refs, rows, curves_seed1 = {}, [], {}
        for key, make in (("lime", lime_m), ("ks", ks_m), ("rise", rise_m)):
            m = make(REF_SEED, ref_n, sampling="independent") if key != "ks" else make(REF_SEED, "auto", max_samples=ref_n)
            setup, res = _score(m, model, x, crop, probs, t, kind)
            refs[key] = _prefix_fn(m, setup, res, t)(ref_n)
            if key == "lime":
                refs["lime package"] = _lime_base_fn(setup.state["masks"], res.scores, t, REF_SEED)(ref_n)
        lime_pkg = {n: [] for n in grid}
        for name, make, kw, rkey in families:
            curve = {n: [] for n in grid}
            for s in seeds:
                m = make(s, max(ns), **kw) if rkey != "ks" else make(s, "auto", max_samples=max(ns), **kw)
                setup, res = _score(m, model, x, crop, probs, t, kind)
                fn = _prefix_fn(m, setup, res, t)
                for n in grid:
                    curve[n].append(_rho(fn(n), refs[rkey]))
                if s == seeds[0]:
                    curves_seed1[name] = {n: curve[n][0] for n in grid}
                if name == "onnxai lime ridge (independent)":
                    fn_pkg = _lime_base_fn(setup.state["masks"], res.scores, t, s)
                    for n in grid:
                        lime_pkg[n].append(_rho(fn_pkg(n), refs["lime package"]))
            rows.append((name, curve))
            if name == "onnxai lime ridge (independent)":
                rows.append(("lime package (LimeBase, same masks)", lime_pkg))
        per, per_lev, per_shap, shap_secs = {n: [] for n in ns}, {n: [] for n in ns}, {n: [] for n in ns}, {}
        for s in seeds:
            for n in ns:
                e = ks_m(s, n).explain(model, crop, target=t, cropped=True)
                per[n].append(_rho(e.importance, refs["ks"]))
                e = ks_m(s, n, sampling="leverage").explain(model, crop, target=t, cropped=True)
                per_lev[n].append(_rho(e.importance, refs["ks"]))
                v, secs = _shap(model, x, segments, baseline, t, n, s, kind)
                per_shap[n].append(_rho(v, refs["ks"]))
                if s == seeds[0]:
                    shap_secs[n] = secs
        rows.append(("onnxai kernel-shap (stratified)", per))
        rows.append(("onnxai kernel-shap (leverage)", per_lev))
        rows.append(("shap.KernelExplainer", per_shap))

        print("method".ljust(38) + "".join(f"n={n}".rjust(13) for n in ns) + "   n 0.95")
        reach = {}
        for name, curve in rows:
            cells = "".join(f"{np.mean(curve[n]):.3f}/{np.min(curve[n]):.3f}".rjust(13) for n in ns)
            reach[name] = _reach(curve)
            print(name.ljust(38) + cells + f"   {reach[name] or '>' + str(ns[-1])}")
        print("(cells: mean/min Spearman over seeds against the reference of the same method: the lime package "
              "against its own; every Kernel SHAP row against the sequential design's reference)")

        # auto, default tolerance: per seed the samples used, against the samples the mean curve needed
        # (one seed's own curve crosses 0.95 at a random point: the mean curve is the picture's figure)
        for name, make, kw, rkey, auto_seeds in (
                ("onnxai lime ridge (independent)", lime_m, {"sampling": "independent"}, "lime", seeds),
                ("onnxai lime ridge (paired)", lime_m, {"sampling": "paired"}, "lime", seeds),
                ("onnxai kernel-shap (sequential)", ks_m, {}, "ks", seeds),
                ("onnxai rise (sobol)", rise_m, {}, "rise", seeds[:1])):
            used, rhos, secs, stopped = [], [], [], []
            for s in auto_seeds:
                t0 = time.perf_counter()
                a = make(s, "auto", max_samples=auto_max, **kw).explain(model, crop, target=t, cropped=True)
                secs.append(time.perf_counter() - t0)
                rhos.append(_rho(a.importance if a.importance is not None else a.map, refs[rkey]))
                used.append(a.extras.get("num_samples"))
                stopped.append(a.extras.get("stopped"))
            autos.append((pic.name, name, used, stopped, rhos, reach[name], secs))
        need_lime = reach["lime package (LimeBase, same masks)"]
        need_shap = reach["shap.KernelExplainer"]
        lime_secs = _lime_image_seconds(model, crop, segments, t, need_lime or max(ns), kind)
        e2e.append((pic.name, autos[-3], autos[-2], need_lime, lime_secs, need_shap,  # lime paired, kernel-shap
                    shap_secs.get(need_shap or max(ns))))

    print(f"\nauto (the rank rule, default tolerance {AUTO_RANK_TOLERANCE:g}): samples used per seed (median) "
          "against the samples the mean curve needed for Spearman 0.95 (goal: within 20%)")
    print("picture".ljust(14) + "method".ljust(34) + "used per seed".rjust(20) + "  stopped".ljust(14) + "rho".rjust(7)
          + "needed".rjust(8) + "used/needed".rjust(13) + "seconds".rjust(9))
    for pic, name, used, stopped, rhos, need, secs in autos:
        med = float(np.median(used))
        ratio = f"{med / need:.2f}" if need else f"(>{ns[-1]})"
        print(pic.ljust(14) + name.ljust(34) + "/".join(map(str, used)).rjust(20)
              + f"  {','.join(sorted(set(stopped)))}".ljust(14) + f"{np.median(rhos):.3f}".rjust(7)
              + f"{need or '>' + str(ns[-1])}".rjust(8) + ratio.rjust(13) + f"{np.median(secs):.1f}".rjust(9))
    print("\nend-to-end seconds to a map of Spearman >= 0.95 (onnxai: the auto run above, marked * if its map "
          "fell short; lime / shap: one run at the n their mean curve needed, > if they never got there)")
    print("picture".ljust(14) + "lime auto (paired)".rjust(18) + "lime package".rjust(20) + "onnxai kshap auto".rjust(19)
          + "shap".rjust(20))
    for pic, al, ak, nl, sl, nk, sk in e2e:
        mark = lambda a: f"{a[6][0]:.1f}s{'*' if a[4][0] < TARGET else ''} ({a[2][0]})"
        other = lambda need, s: ("" if need else ">") + (f"{s:.1f}s ({need or ns[-1]})" if s is not None else "-")
        print(pic.ljust(14) + mark(al).rjust(18) + other(nl, sl).rjust(20) + mark(ak).rjust(19) + other(nk, sk).rjust(20))
    print(f"\n(total {time.perf_counter() - t_all:.0f} s)")
