"""Convergence per forward pass: Spearman correlation of each sampled map with a long reference run.

For each picture and method: the map at n = 125 ... 2000 samples against a reference of the same
method and segmentation with ``ref`` samples (another seed), mean and min over seeds; the smallest n
whose mean reaches 0.95; what num_samples="auto" (default tolerance) used, its Spearman and seconds.
Side by side: the lime package's own surrogate (``LimeBase.explain_instance_with_data`` on lime's own
mask draw, scored through the same model and the same segment-mean fill, all features) and
shap.KernelExplainer (same superpixels and fill, l1_reg=False).

Prefix-consistent designs (LIME's masks, lime's draw, Kernel SHAP's sequential design, RISE's masks)
are scored once at the largest n and fitted on prefixes: the map at n is bit for bit the one a run
of n samples gives. Kernel SHAP's stratified design and shap are run at each n.

    python -m tools.bench convergence           # n up to 2000, 3 seeds, 20000-sample references
    python -m tools.bench convergence --quick   # n up to 1000, 2 seeds, 2000-sample references
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

import onnxai
from onnxai import engine
from onnxai.methods.base import make_fill

ROOT = Path(__file__).resolve().parents[2]


class _Run:
    def __init__(self, scores, fx=None, fnull=None):
        self.scores, self.input_scores, self.baseline_scores = scores, fx, fnull


def _rho(a, b):
    return float(spearmanr(np.ravel(a), np.ravel(b))[0])


def _prefix_maps(method, model, x, crop, probs, t, ns):
    """{n: values} from one engine run of max(ns) samples, fitted on prefixes."""
    setup = method.setup(model, x, crop, probs)
    res = method._run(model, x, setup.baseline, setup.source, ends=method.end_points,
                      kind=method.resolve_score(probs, [t])[0])
    out = {}
    for n in ns:
        run = _Run(res.scores[:n], res.input_scores, res.baseline_scores)
        if hasattr(setup.state.get("masks"), "fold"):  # RISE
            setup.state["sums"] = None
        part = method.aggregate(run, setup, [t])[0]
        out[n] = part["importance"] if part.get("importance") is not None else part["map"]
    return out, setup


def _lime_package(model, x, crop, segments, baseline, t, ns, seed, kind):
    from lime import lime_base

    k = int(segments.max()) + 1
    data = np.random.RandomState(seed).randint(0, 2, max(ns) * k).reshape((max(ns), k)).astype(np.uint8)
    data[0, :] = 1
    res = engine.run(model, x, baseline, engine.FeatureMasks(data, segments), kind=kind)
    from sklearn.metrics import pairwise_distances

    dist = pairwise_distances(data, data[0].reshape(1, -1), metric="cosine").ravel()
    base = lime_base.LimeBase(lambda d: np.sqrt(np.exp(-(d ** 2) / 0.25 ** 2)), random_state=seed)
    out = {}
    for n in ns:
        exp = base.explain_instance_with_data(data[:n], res.scores[:n], dist[:n], t, k, feature_selection="none")
        v = np.zeros(k)
        for f, c in exp[2]:
            v[f] = c
        out[n] = v
    return out


def _shap(model, x, segments, baseline, t, n, seed, kind):
    import shap

    k = int(segments.max()) + 1

    def f(z):
        res = engine.run(model, x, baseline, engine.FeatureMasks(np.ascontiguousarray(z, np.uint8), segments), kind=kind)
        return res.scores[:, t]

    np.random.seed(seed)
    ex = shap.KernelExplainer(f, np.zeros((1, k)))
    return np.asarray(ex.shap_values(np.ones((1, k)), nsamples=n, l1_reg=False, silent=True)).reshape(-1)


def run(quick: bool = False) -> None:
    ns = [125, 250, 500, 1000] if quick else [125, 250, 500, 1000, 2000]
    seeds = [1, 2] if quick else [1, 2, 3]
    ref_n = int(os.environ.get("ONNXAI_BENCH_REF", 2000 if quick else 20000))
    pictures = sorted((ROOT / "samples").glob("*.png"))[: (1 if quick else int(os.environ.get("ONNXAI_BENCH_PICTURES", 4)))]
    model = onnxai.load(str(ROOT / "models" / "efficientnet_lite0.onnx"), providers="cpu")
    print(f"convergence: n={ns}, seeds={seeds}, reference={ref_n} samples, {len(pictures)} picture(s)")
    for pic in pictures:
        x, crop = model.prepare(str(pic))
        probs = model.run_batch(x)[0]
        t = int(np.argmax(probs))
        print(f"\n{pic.name}: target {model.label(t)!r} p={probs[t]:.3f}")
        rows = []
        lime_m = lambda s, n="auto": onnxai.LIME(num_features=49, num_samples=n, surrogate="ridge", fill="segment-mean", seed=s)
        ks_m = lambda s, n="auto": onnxai.KernelSHAP(num_features=49, num_samples=n, fill="segment-mean", seed=s)
        rise_m = lambda s, n="auto": onnxai.RISE(num_samples=n, seed=s)
        for name, make in (("onnxai lime (ridge)", lime_m), ("onnxai kernel-shap (sequential)", ks_m),
                           ("onnxai rise", rise_m)):
            ref, setup = _prefix_maps(make(1000, "auto"), model, x, crop, probs, t, [ref_n])
            ref = ref[ref_n]
            per = {n: [] for n in ns}
            for s in seeds:
                maps, _ = _prefix_maps(make(s, "auto"), model, x, crop, probs, t, ns)
                for n in ns:
                    per[n].append(_rho(maps[n], ref))
            t0 = time.perf_counter()
            auto = make(seeds[0]).explain(model, str(pic), target=t)
            secs = time.perf_counter() - t0
            auto_rho = _rho(auto.importance if auto.importance is not None else auto.map, ref)
            rows.append((name, per, (auto.extras.get("num_samples"), auto.extras.get("stopped"), auto_rho, secs)))
            if name.startswith("onnxai lime"):
                segments, baseline = setup.state["segments"], setup.baseline
        kind = "probabilities"
        ref = _lime_package(model, x, crop, segments, baseline, t, [ref_n], 1000, kind)[ref_n]
        per = {n: [] for n in ns}
        for s in seeds:
            maps = _lime_package(model, x, crop, segments, baseline, t, ns, s, kind)
            for n in ns:
                per[n].append(_rho(maps[n], ref))
        rows.append(("lime package (LimeBase)", per, None))
        ref = ks_ref = _prefix_maps(ks_m(1000, "auto"), model, x, crop, probs, t, [ref_n])[0][ref_n]
        per = {n: [] for n in ns}
        per_shap = {n: [] for n in ns}
        for s in seeds:
            for n in ns:
                e = onnxai.KernelSHAP(num_features=49, num_samples=n, fill="segment-mean", seed=s,
                                      segmentation=segments).explain(model, crop, target=t, cropped=True)
                per[n].append(_rho(e.importance, ks_ref))
                per_shap[n].append(_rho(_shap(model, x, segments, baseline, t, n, s, kind), ks_ref))
        rows.append(("onnxai kernel-shap (stratified)", per, None))
        rows.append(("shap.KernelExplainer", per_shap, None))
        head = "method".ljust(34) + "".join(f"n={n}".rjust(14) for n in ns) + "   n for 0.95   auto: n, stop, rho, s"
        print(head)
        for name, per, auto in rows:
            cells = "".join(f"{np.mean(per[n]):.3f}/{np.min(per[n]):.3f}".rjust(14) for n in ns)
            reach = next((n for n in ns if np.mean(per[n]) >= 0.95), None)
            a = "" if auto is None else f"   {auto[0]}, {auto[1]}, {auto[2]:.3f}, {auto[3]:.1f}s"
            print(name.ljust(34) + cells + f"   {reach or '>' + str(ns[-1])}".ljust(14) + a)
        print("(cells: mean/min Spearman over seeds against the reference of the same method; Kernel SHAP "
              "rows against the sequential design's reference)")
