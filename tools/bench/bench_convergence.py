"""Convergence per forward pass: rank correlation of each sampled map with a long reference run.

For each picture, one fixed segmentation (SLIC, 49 superpixels, fill "segment-mean") is used by every
LIME and Kernel SHAP row, onnxai's and the packages'. The figure is the Spearman correlation of the
map (the painted heat map: each superpixel counted by its pixels, as `methods.budget.rank_correlation`
and the rank rule of num_samples="auto" read it; RISE's maps per pixel) at n samples with a reference
of the same method (``ref`` samples, seed 1000), mean/min over seeds.

A reference of R samples is itself noisy, so a raw correlation with it saturates below 1 and
understates how close a map is to the method's limit (by 0.2-2% at 20,000 samples on the shipped
pictures, more where a method converges slowly). Each cell is therefore divided by the reference's
own expected correlation with its limit, estimated from its halves and quarters as the rank rule of
num_samples="auto" reads them (``methods.budget.predicted_disagreement``: Spearman-Brown with the
exponent the quarters show): Spearman's correction for attenuation (Spearman 1904). The "raw" column
gives the samples needed without the correction. For RISE the correction is rougher: its quarters are
power-of-two blocks of per-pixel maps, and on chelsea the corrected Sobol figure passed 1 at 2000 masks,
so read RISE's raw column too.

"n 0.95": the smallest n from which the mean over seeds stays >= 0.95 (on a geometric grid of n, 12%
steps, for the prefix-consistent designs; on n = 125 ... 2000 otherwise). Then the issue's goals per
picture: the n at which onnxai's LIME (paired) and Kernel SHAP reach what the lime package and
shap.KernelExplainer reach at 1000; num_samples="auto" with the default tolerance (every seed): the
median samples it used against the samples the mean curve needed; and the end-to-end seconds to a map
of Spearman >= 0.95 for onnxai (auto, at most 4000 samples) against the lime package
(``LimeImageExplainer.explain_instance``, batch_size 64) and shap.KernelExplainer (l1_reg=False), each
at the n it needed.

Why it is cheap enough to run: every reference is scored once per picture and method (not per seed);
prefix-consistent designs (LIME's masks, independent or paired; Kernel SHAP's sequential design; RISE's
masks, independent or Sobol) are scored once at the largest n and fitted on prefixes (the map at n is
bit for bit the one a run of n samples gives); the lime package's surrogate (``LimeBase``) is fitted
on the very masks and scores of onnxai's independent LIME draw (lime's own draw has the same
distribution: every feature on with probability 1/2, row 0 all ones), against its own reference
fitted on the reference masks. Only Kernel SHAP's stratified and leverage designs and shap are run at
each n, with the first 3 seeds (as are RISE and independent LIME's auto).

    python -m tools.bench convergence           # 4 pictures, n up to 2000, 10 seeds, 5000-sample references
    python -m tools.bench convergence --quick   # 1 picture, n up to 250, 2 seeds, 300-sample references, auto at most 500
    ONNXAI_BENCH_REF=20000 ONNXAI_BENCH_PICTURES=chelsea,coffee,rocket python -m tools.bench convergence   # the issue's
    ONNXAI_BENCH_SEEDS=5    # fewer seeds (the goals' figures are medians and means over seeds: 10 by default)
    ONNXAI_BENCH_FOLLOW=4000  # score the prefix designs to 4000 samples, for maps that need more than 2000
                              # (rocket's Kernel SHAP needed 2388); their "n 0.95" is then read up to 4000

Forward passes are the whole cost (about 6 ms each for EfficientNet-Lite0 on 2 cores): per picture
about 3 x ref + (3 x seeds + 6) x max(n) + 9 x sum(n) + the autos (max(n): ONNXAI_BENCH_FOLLOW when
set); with 20,000-sample references and 10 seeds about 20 minutes a picture on 2 cores.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

import onnxai
from onnxai import engine
from onnxai.methods.budget import (AUTO_RANK_TOLERANCE, QUARTER_GROUPS, predicted_disagreement, quarter_of,
                                   rank_correlation, split_agreements)

ROOT = Path(__file__).resolve().parents[2]
REF_SEED = 1000
TARGET = 0.95
COSTLY_SEEDS = 3  # seeds for the rows run at each n and for RISE


class _Run:
    def __init__(self, scores, fx=None, fnull=None):
        self.scores, self.input_scores, self.baseline_scores = scores, fx, fnull


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


def _ref_reliability(method, setup, res, t) -> float:
    """The reference map's expected correlation with its limit, from the method's own quarters and
    halves, read as the rank rule reads them (its pixel weights, exponent and Spearman-Brown factor)."""
    maps = method.part_maps(res, setup, [t], QUARTER_GROUPS)[0]
    r2, r4 = split_agreements(maps, method.rank_weights(setup), method.halves_pairings, method.quarters_scale)
    return 1.0 - predicted_disagreement(r2, r4, method.halves_parts(res.scores.shape[0]))


def _lime_base_fn(masks, scores, t, seed):
    """n -> the lime package's ridge surrogate (LimeBase, kernel width 0.25, all features) on the first n."""
    from lime import lime_base
    from sklearn.metrics import pairwise_distances

    k = masks.shape[1]
    dist = pairwise_distances(masks, masks[0].reshape(1, -1), metric="cosine").ravel()
    base = lime_base.LimeBase(lambda d: np.sqrt(np.exp(-(d ** 2) / 0.25 ** 2)), random_state=seed)

    def fn(n, rows=None):
        rows = np.arange(n) if rows is None else rows
        exp = base.explain_instance_with_data(masks[rows], scores[rows], dist[rows], t, k, feature_selection="none")
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


def _reach(curve: dict, level: float = TARGET) -> int | None:
    """Smallest n from which the mean Spearman stays >= level."""
    ns = sorted(curve)
    for i, n in enumerate(ns):
        if all(np.mean(curve[m]) >= level for m in ns[i:]):
            return n
    return None


def _grid(ns):
    g, n = set(ns), 100.0
    while n < max(ns):
        g.add(int(round(n)))
        n *= 1.12
    return sorted(g)


def _scaled(curve: dict, by: float) -> dict:
    return {n: [v / by for v in vals] for n, vals in curve.items()}


def run(quick: bool = False) -> None:
    ns = [125, 250] if quick else [125, 250, 500, 1000, 2000]
    seeds = list(range(1, 1 + int(os.environ.get("ONNXAI_BENCH_SEEDS", 2 if quick else 10))))
    few = seeds[:COSTLY_SEEDS]
    ref_n = int(os.environ.get("ONNXAI_BENCH_REF", 300 if quick else 5000))
    pictures = sorted((ROOT / "samples").glob("*.png"))
    which = os.environ.get("ONNXAI_BENCH_PICTURES", "1" if quick else "4")  # a count, or names: chelsea,coffee
    pictures = pictures[: int(which)] if which.isdigit() else [p for p in pictures if p.stem in which.split(",")]
    auto_max = 500 if quick else 4000  # RISE rarely converges; cap its cost
    compare_at = ns[-2] if quick else 1000  # the goals: onnxai's n for what lime / shap reach at this n
    model = onnxai.load(str(ROOT / "models" / "efficientnet_lite0.onnx"), providers="cpu")
    follow = max(int(os.environ.get("ONNXAI_BENCH_FOLLOW", max(ns))), max(ns))  # the prefix designs' last n
    grid = _grid(ns + [follow])
    print(f"convergence: n={ns}, {len(seeds)} seeds ({len(few)} for the rows run at each n and for RISE), "
          f"reference={ref_n} samples (seed {REF_SEED}), {len(pictures)} picture(s), SLIC 49 superpixels fixed per "
          f"picture, fill segment-mean (RISE: its own masks, fill zero); Spearman of the painted maps, corrected for "
          f"the reference's own noise; prefix designs followed to n={follow}")
    t_all = time.perf_counter()
    autos, e2e, goals = [], [], []
    for pic in pictures:
        x, crop = model.prepare(str(pic))
        probs = model.run_batch(x)[0]
        t = int(np.argmax(probs))
        slic = onnxai.LIME(num_features=49, surrogate="ridge", fill="segment-mean")
        seg = slic.setup(model, x, crop, probs)
        segments, baseline = seg.state["segments"], seg.baseline
        area = slic.rank_weights(seg)  # pixels per superpixel: the painted map's weights
        kind = onnxai.LIME(surrogate="ridge").resolve_score(probs, [t])[0]
        print(f"\n{pic.name}: target {model.label(t)!r} p={probs[t]:.3f}, score {kind}, "
              f"{int(segments.max()) + 1} superpixels")
        lime_m = lambda s, n, **kw: onnxai.LIME(num_samples=n, segmentation=segments, surrogate="ridge",
                                                fill="segment-mean", seed=s, score=kind, **kw)
        ks_m = lambda s, n, **kw: onnxai.KernelSHAP(num_samples=n, segmentation=segments, fill="segment-mean",
                                                    seed=s, score=kind, **kw)
        rise_m = lambda s, n, **kw: onnxai.RISE(num_samples=n, seed=s, score=kind, **kw)
        weights = {"lime": area, "ks": area, "rise": None}
        rho = lambda a, key: rank_correlation(a, refs[key], weights[key])
        families = [  # (row name, factory, options, reference row, seeds)
            ("onnxai lime ridge (independent)", lime_m, {"sampling": "independent"}, "lime", seeds),
            ("onnxai lime ridge (paired)", lime_m, {"sampling": "paired"}, "lime", seeds),
            ("onnxai kernel-shap (sequential)", ks_m, {}, "ks", seeds),
            ("onnxai rise (independent)", rise_m, {"sampling": "independent"}, "rise", few),
            ("onnxai rise (sobol)", rise_m, {"sampling": "sobol"}, "rise", few),
        ]
        refs, rel, rows = {}, {}, []
        for key, make in (("lime", lime_m), ("ks", ks_m), ("rise", rise_m)):
            m = make(REF_SEED, ref_n, sampling="independent") if key != "ks" else make(REF_SEED, "auto", max_samples=ref_n)
            setup, res = _score(m, model, x, crop, probs, t, kind)
            refs[key] = _prefix_fn(m, setup, res, t)(ref_n)
            rel[key] = _ref_reliability(m, setup, res, t)
            if rel[key] <= 0:  # halves that do not agree at all (a short reference): no correction
                print(f"({key}: the reference's halves do not agree; its row is not corrected)")
                rel[key] = 1.0
            if key == "lime":
                fn = _lime_base_fn(setup.state["masks"], res.scores, t, REF_SEED)
                refs["lime package"] = fn(ref_n)
                weights["lime package"] = area
                quarter = quarter_of(np.arange(ref_n))  # as onnxai's independent LIME deals its draws
                maps = [fn(0, np.flatnonzero(np.isin(quarter, g))) for g in QUARTER_GROUPS]
                rel["lime package"] = 1.0 - predicted_disagreement(*split_agreements(maps, area))
        print("reference's expected correlation with its limit (halves and quarters): "
              + ", ".join(f"{k} {v:.4f}" for k, v in rel.items()))
        raw = {}
        lime_pkg = {n: [] for n in grid}
        for name, make, kw, rkey, fseeds in families:
            curve = {n: [] for n in grid}
            for s in fseeds:
                m = make(s, follow, **kw) if rkey != "ks" else make(s, "auto", max_samples=follow, **kw)
                setup, res = _score(m, model, x, crop, probs, t, kind)
                fn = _prefix_fn(m, setup, res, t)
                for n in grid:
                    curve[n].append(rho(fn(n), rkey))
                if name == "onnxai lime ridge (independent)":
                    fn_pkg = _lime_base_fn(setup.state["masks"], res.scores, t, s)
                    for n in grid:
                        lime_pkg[n].append(rho(fn_pkg(n), "lime package"))
            rows.append((name, _scaled(curve, rel[rkey])))
            raw[name] = curve
            if name == "onnxai lime ridge (independent)":
                rows.append(("lime package (LimeBase, same masks)", _scaled(lime_pkg, rel["lime package"])))
                raw["lime package (LimeBase, same masks)"] = lime_pkg
        per = {key: {n: [] for n in ns} for key in ("stratified", "leverage", "shap")}
        shap_secs = {}
        for s in few:
            for n in ns:
                e = ks_m(s, n).explain(model, crop, target=t, cropped=True)
                per["stratified"][n].append(rho(e.importance, "ks"))
                e = ks_m(s, n, sampling="leverage").explain(model, crop, target=t, cropped=True)
                per["leverage"][n].append(rho(e.importance, "ks"))
                v, secs = _shap(model, x, segments, baseline, t, n, s, kind)
                per["shap"][n].append(rho(v, "ks"))
                if s == few[0]:
                    shap_secs[n] = secs
        for key, name in (("stratified", "onnxai kernel-shap (stratified)"), ("leverage", "onnxai kernel-shap (leverage)"),
                          ("shap", "shap.KernelExplainer")):
            rows.append((name, _scaled(per[key], rel["ks"])))
            raw[name] = per[key]

        print("method".ljust(38) + "".join(f"n={n}".rjust(13) for n in ns) + "   n 0.95   (raw)")
        reach = {}
        for name, curve in rows:
            cells = "".join(f"{np.mean(curve[n]):.3f}/{np.min(curve[n]):.3f}".rjust(13) for n in ns)
            reach[name] = _reach(curve)
            r_raw = _reach(raw[name])
            print(name.ljust(38) + cells + f"{reach[name] or '>' + str(max(curve))}".rjust(8)
                  + f"({r_raw or '>' + str(max(curve))})".rjust(8))
        print("(cells: mean/min over seeds of the Spearman correlation of the map with the reference of the same "
              "method (the lime package against its own; every Kernel SHAP row against the sequential design's), "
              "divided by the reference's expected correlation with its limit; raw: n 0.95 without that division)")

        curves = dict(rows)
        for mine, theirs in (("onnxai lime ridge (paired)", "lime package (LimeBase, same masks)"),
                             ("onnxai kernel-shap (sequential)", "shap.KernelExplainer"),
                             ("onnxai kernel-shap (stratified)", "shap.KernelExplainer")):
            level = float(np.mean(curves[theirs][compare_at]))
            goals.append((pic.name, mine, theirs, level, _reach(curves[mine], level)))

        # auto, default tolerance: per seed the samples used, against the samples the mean curve needed
        # (one seed's own curve crosses 0.95 at a random point: the mean curve is the picture's figure)
        for name, make, kw, rkey, auto_seeds in (
                ("onnxai lime ridge (independent)", lime_m, {"sampling": "independent"}, "lime", few),
                ("onnxai lime ridge (paired)", lime_m, {"sampling": "paired"}, "lime", seeds),
                ("onnxai kernel-shap (sequential)", ks_m, {}, "ks", seeds),
                ("onnxai rise (sobol)", rise_m, {}, "rise", seeds[:1])):
            used, rhos, secs, stopped = [], [], [], []
            for s in auto_seeds:
                t0 = time.perf_counter()
                a = make(s, "auto", max_samples=auto_max, **kw).explain(model, crop, target=t, cropped=True)
                secs.append(time.perf_counter() - t0)
                rhos.append(rho(a.importance if a.importance is not None else a.map, rkey) / rel[rkey])
                used.append(a.extras.get("num_samples"))
                stopped.append(a.extras.get("stopped"))
            autos.append((pic.name, name, used, stopped, rhos, reach[name], secs))
        need_lime = reach["lime package (LimeBase, same masks)"]
        need_shap = reach["shap.KernelExplainer"]
        lime_secs = _lime_image_seconds(model, crop, segments, t, need_lime or max(ns), kind)
        e2e.append((pic.name, autos[-3], autos[-2], need_lime, lime_secs, need_shap,  # lime paired, kernel-shap
                    shap_secs.get(need_shap or max(ns))))

    print(f"\ngoal: onnxai reaches what the lime package / shap.KernelExplainer reach at n={compare_at} with at most "
          f"{int(compare_at * 0.4)} samples (mean over seeds, corrected Spearman)")
    print("picture".ljust(14) + "onnxai".ljust(34) + "against".ljust(38) + "level".rjust(7) + "onnxai's n".rjust(12)
          + "fewer".rjust(8))
    for pic, mine, theirs, level, n_mine in goals:
        fewer = f"{compare_at / n_mine:.2f}x" if n_mine else "-"
        print(pic.ljust(14) + mine.ljust(34) + f"{theirs} @{compare_at}".ljust(38) + f"{level:.3f}".rjust(7)
              + f"{n_mine or '>' + str(follow)}".rjust(12) + fewer.rjust(8))

    print(f"\nauto (the rank rule, default tolerance {AUTO_RANK_TOLERANCE:g}): samples used per seed (median) "
          "against the samples the mean curve needed for Spearman 0.95 (goal: within 20%)")
    print("picture".ljust(14) + "method".ljust(34) + "used per seed".rjust(44) + "  stopped".ljust(14) + "rho".rjust(7)
          + "needed".rjust(8) + "used/needed".rjust(13) + "seconds".rjust(9))
    for pic, name, used, stopped, rhos, need, secs in autos:
        med = float(np.median(used))
        ratio = f"{med / need:.2f}" if need else f"(>{follow})"
        print(pic.ljust(14) + name.ljust(34) + f"{'/'.join(map(str, used))} ({med:.0f})".rjust(44)
              + f"  {','.join(sorted(set(stopped)))}".ljust(14) + f"{np.median(rhos):.3f}".rjust(7)
              + f"{need or '>' + str(follow)}".rjust(8) + ratio.rjust(13) + f"{np.median(secs):.1f}".rjust(9))
    print("\nend-to-end seconds to a map of Spearman >= 0.95 (onnxai: the auto run of the first seed, marked * if "
          "its map fell short; lime / shap: one run at the n their mean curve needed, > if they never got there)")
    print("picture".ljust(14) + "lime auto (paired)".rjust(18) + "lime package".rjust(20) + "onnxai kshap auto".rjust(19)
          + "shap".rjust(20))
    for pic, al, ak, nl, sl, nk, sk in e2e:
        mark = lambda a: f"{a[6][0]:.1f}s{'*' if a[4][0] < TARGET else ''} ({a[2][0]})"
        other = lambda need, s: ("" if need else ">") + (f"{s:.1f}s ({need or ns[-1]})" if s is not None else "-")
        print(pic.ljust(14) + mark(al).rjust(18) + other(nl, sl).rjust(20) + mark(ak).rjust(19) + other(nk, sk).rjust(20))
    print(f"\n(total {time.perf_counter() - t_all:.0f} s)")
