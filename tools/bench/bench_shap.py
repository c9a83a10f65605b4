"""Kernel SHAP: onnxai vs shap.KernelExplainer fed the same onnxruntime session.

Tabular: a scikit-learn random forest on breast cancer (30 features) exported with skl2onnx, 20 rows,
nsamples 1000, a k-means background of 10 rows (shap.kmeans and onnxai's summary are identical).
Reported: total seconds, seconds inside the model, overhead = total / model.

Accuracy: a forest on the first 12 features (2^12 coalitions enumerated gives the exact Shapley values
of the same value function), 20 rows, the same budget of 1000 coalitions, 30 seeds (5 with --quick)
for shap.KernelExplainer and for each of onnxai's coalition designs (sampling="shap", its copy of
shap's, and "stratified", the default): mean ± standard error over seeds of the RMSE and of the
max |phi - exact| over rows and classes.

Designs at small budgets: the same 12-feature forest, every coalition scored once (a lookup table),
then the RMSE against the exact values of onnxai's three designs (sampling="stratified", "shap",
"leverage") at budgets 2M, 4M and 8M; and a game with known Shapley values (linear, unanimity and
threshold terms) on 12 and 50 features at 2M..20M; 30 seeds (5 with --quick).
``python -m tools.bench.bench_shap designs`` runs only these tables.

Images: the shipped EfficientNet-Lite0 on samples/chelsea.png, about 50 SLIC superpixels (the smallest
num_features giving >= 50), 1000 coalitions, mean fill: total / forward time of one explain call (after
a warm-up call that loads the Numba cache), and the peak RSS of each run in its own subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _forest(n_features=None):
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from skl2onnx import to_onnx

    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32).astype(np.float64)
    if n_features:
        X = X[:, :n_features]
    rf = RandomForestClassifier(100, max_depth=8, random_state=0).fit(X, y)
    return X, to_onnx(rf, X[:1].astype(np.float32), options={id(rf): {"zipmap": False}}, target_opset=17)


class _Timed:
    """The session's run, timed: what shap.KernelExplainer calls."""

    def __init__(self, model):
        self.sess, self.out, self.inp = model.session, model.output, model.input.name
        self.seconds, self.rows = 0.0, 0

    def __call__(self, Z):
        t = time.perf_counter()
        r = self.sess.run([self.out], {self.inp: np.ascontiguousarray(Z, np.float32)})[0]
        self.seconds += time.perf_counter() - t
        self.rows += Z.shape[0]
        return r


def _shap(model, bg, rows, nsamples, seed=0):
    import shap
    from shap.utils._legacy import DenseData

    f = _Timed(model)
    ex = shap.KernelExplainer(f, DenseData(bg.data, [str(i) for i in range(bg.data.shape[1])], None, bg.weights))
    np.random.seed(seed)
    t = time.perf_counter()
    v = np.asarray(ex.shap_values(rows, nsamples=nsamples, l1_reg=False, silent=True))
    return v, time.perf_counter() - t, f.seconds, f.rows


def tabular(quick: bool):
    import onnxai

    n_rows = 5 if quick else 20
    X, proto = _forest()
    model = onnxai.load(proto, providers="cpu")
    rows = X[:n_rows]
    ks = onnxai.KernelSHAP(num_samples=1000, background=X, background_size=10, seed=0)
    ks.explain(model, rows[:1])  # compile the kernels, summarise the background once
    t = time.perf_counter()
    e = ks.explain(model, rows)
    o_total = time.perf_counter() - t
    o_model = e.timings["forward"]
    v, s_total, s_model, s_rows = _shap(model, ks.background_for(model, rows), rows, 1000)
    print(f"tabular: random forest (100 trees), breast cancer 30 features, {n_rows} rows, nsamples 1000, "
          f"k-means background 10 rows")
    print(f"{'':22s}{'total s':>9s}{'model s':>9s}{'overhead':>10s}")
    print(f"{'shap.KernelExplainer':22s}{s_total:9.3f}{s_model:9.3f}{s_total / s_model:10.2f}   ({s_rows} rows scored)")
    print(f"{'onnxai KernelSHAP':22s}{o_total:9.3f}{o_model:9.3f}{o_total / o_model:10.2f}")
    print(f"end to end: onnxai is {s_total / o_total:.1f}x faster; max |onnxai - shap| = {np.abs(e.values - v).max():.4f}")


def accuracy(quick: bool):
    """Error against exact Shapley values at budget 1000: onnxai (each sampling scheme) and shap, many seeds."""
    import onnxai

    n_rows, n_seeds = (5, 5) if quick else (20, 30)
    X12, proto12 = _forest(12)
    m12 = onnxai.load(proto12, providers="cpu")
    rows12 = X12[:n_rows]
    bg12 = onnxai.tables.summarise(X12, 10, "kmeans", 0)
    # 2^12 - 2 coalitions enumerated: the exact Shapley values of this value function
    exact = onnxai.KernelSHAP(num_samples=2 ** 12, background=bg12).explain(m12, rows12).values
    labels = {"shap": "shap.KernelExplainer", "onnxai-shap": 'onnxai sampling="shap"',
              "onnxai-stratified": 'onnxai "stratified"'}
    rmse = {k: [] for k in labels}
    worst = {k: [] for k in labels}
    t = time.perf_counter()
    for seed in range(n_seeds):
        got = {"shap": _shap(m12, bg12, rows12, 1000, seed=seed)[0]}
        for sampling in ("shap", "stratified"):
            ks = onnxai.KernelSHAP(num_samples=1000, background=bg12, seed=seed, sampling=sampling)
            got[f"onnxai-{sampling}"] = ks.explain(m12, rows12).values
        for k, v in got.items():
            rmse[k].append(np.sqrt(np.mean((v - exact) ** 2)))
            worst[k].append(np.abs(v - exact).max())
    print(f"\nerror vs exact Shapley values: forest on 12 features (2^12 coalitions enumerated = exact), {n_rows} rows "
          f"x 2 classes, budget 1000, {n_seeds} seeds each (shap: np.random.seed(seed)); {time.perf_counter() - t:.0f} s")
    print(f"{'':26s}{'RMSE (mean ± s.e.)':>22s}{'max |err| (mean ± s.e.)':>26s}{'worst max':>11s}")
    for k, label in labels.items():
        r, w = np.array(rmse[k]), np.array(worst[k])
        se = lambda a: a.std(ddof=1) / np.sqrt(a.size) if a.size > 1 else float("nan")  # noqa: E731
        print(f"{label:26s}{r.mean():12.5f} ± {se(r):.5f}{w.mean():16.5f} ± {se(w):.5f}{w.max():11.5f}")
    ref = np.array(rmse["shap"])
    for k in ("onnxai-shap", "onnxai-stratified"):
        print(f"{labels[k]}: mean RMSE / shap's = {np.mean(rmse[k]) / ref.mean():.2f}, "
              f"below shap's in {np.sum(np.array(rmse[k]) < ref)}/{n_seeds} seeds")


def _design_rmse(label, M, value, exact, budgets, n_seeds):
    """Print the RMSE vs exact (mean ± s.e. over seeds) of each design at each budget."""
    from onnxai.kernels.coalitions import shapley_coalitions
    from onnxai.kernels.shapley import shapley_solve

    ends = value(np.array([[0] * M, [1] * M], np.uint8))

    def rmse(n, seed, kind):
        masks, w = shapley_coalitions(M, n, seed, kind)
        return np.sqrt(np.mean((shapley_solve(masks, w, value(masks) - ends[0], ends[1] - ends[0]) - exact) ** 2))

    kinds = ("stratified", "shap", "leverage")
    print(f"\n{label}: RMSE vs exact Shapley values, mean ± s.e. over {n_seeds} seeds")
    print(f"{'n':>6s}" + "".join(f"{k:>22s}" for k in kinds) + f"{'leverage/stratified':>21s}")
    for n in budgets:
        rm = {k: np.array([rmse(n, seed, k) for seed in range(n_seeds)]) for k in kinds}
        cells = "".join(f"{r.mean():13.5f} ± {r.std(ddof=1) / np.sqrt(r.size):.5f}" for r in rm.values())
        print(f"{n:6d}{cells}{rm['leverage'].mean() / rm['stratified'].mean():21.2f}")


def _game(M, seed=0):
    """A game with known Shapley values: linear + unanimity games on 2, 3, 5, 8 features + 2 [>= 3 of 6]."""
    rng = np.random.default_rng(seed)
    a, coef = rng.standard_normal(M), 2 * rng.standard_normal(4)
    groups = [rng.choice(M, k, replace=False) for k in (2, 3, 5, 8)]
    thr = rng.choice(M, 6, replace=False)

    def value(z):
        z = z.astype(np.float64)
        out = z @ a + 2.0 * (z[:, thr].sum(axis=1) >= 3)
        for g, c in zip(groups, coef):
            out += c * z[:, g].prod(axis=1)
        return out[:, None]

    exact = a.copy()
    for g, c in zip(groups, coef):
        exact[g] += c / len(g)
    exact[thr] += 2.0 / 6
    return value, exact[:, None]


def designs(quick: bool):
    """The coalition designs at small budgets: the 12-feature forest (scores looked up) and a known game."""
    import onnxai
    from onnxai.kernels.coalitions import shapley_coalitions
    from onnxai.kernels.shapley import shapley_solve

    n_rows, n_seeds, M = (5, 5, 12) if quick else (20, 30, 12)
    X, proto = _forest(M)
    model = onnxai.load(proto, providers="cpu")
    bg = onnxai.tables.summarise(X, 10, "kmeans", 0)
    allm = ((np.arange(2 ** M)[:, None] >> np.arange(M)[None, :]) & 1).astype(np.uint8)
    pw = 1 << np.arange(M)
    games = []  # (2^M, rows * C): every coalition's value for every row and class, row = coalition code
    for x in X[:n_rows]:
        z = np.where(allm[:, None, :].astype(bool), x[None, None, :], bg.data[None])
        s = model.scores(z.reshape(-1, M).astype(np.float32)).astype(np.float64)
        games.append((s.reshape(2 ** M, bg.data.shape[0], -1) * bg.weights[None, :, None]).sum(axis=1))
    v = np.concatenate(games, axis=1)
    value = lambda masks: v[masks.astype(np.int64) @ pw]  # noqa: E731
    full, fw = shapley_coalitions(M, 2 ** M)
    exact = shapley_solve(full, fw, value(full) - v[0], v[-1] - v[0])  # every coalition: the exact values
    _design_rmse(f"designs: forest on {M} features, {n_rows} rows x 2 classes", M, value, exact,
                 (2 * M, 4 * M, 8 * M), n_seeds)
    for m in (12, 50):
        _design_rmse(f"designs: known game on {m} features", m, *_game(m), (2 * m, 4 * m, 8 * m, 20 * m), n_seeds)


_IMAGE_CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {root!r})
import onnxai
from onnxai import features
which, nsamples = sys.argv[1], int(sys.argv[2])
model = onnxai.load({root!r} + "/models/efficientnet_lite0.onnx", providers="cpu")
pic = {root!r} + "/samples/chelsea.png"
x, crop = model.prepare(pic)
k = next(k for k in range(50, 120, 2) if features.segment(crop, method="slic", num_features=k, seed=0).max() + 1 >= 50)
if which == "onnxai":  # warm up: imports, Numba cache loading (a one-off per process, ~1 s)
    onnxai.KernelSHAP(num_samples=8, num_features=k, progress=False).explain(model, pic)
t0 = time.perf_counter()
if which == "onnxai":
    ks = onnxai.KernelSHAP(num_samples=nsamples, num_features=k, fill="mean", seed=0, progress=False)
    e = ks.explain(model, pic)
    total = time.perf_counter() - t0
    fwd = e.timings["forward"]
    M = e.extras["num_features"]
else:
    import shap
    segments = features.segment(crop, method="slic", num_features=k, seed=0)
    M = int(segments.max()) + 1
    base = onnxai.methods.fills.make_fill(model, crop, x, "mean")
    sess, name, out = model.session, model.input.name, model.output
    fwd = 0.0
    target = int(np.argmax(model.scores(x)[0]))
    def f(z):
        global fwd
        z = np.asarray(z)
        res = []
        for i in range(0, z.shape[0], 32):
            m = z[i:i + 32][:, segments].astype(np.float32)[:, None]
            batch = (base + m * (x - base)).astype(np.float32)
            t = time.perf_counter()
            r = sess.run([out], {{name: batch}})[0]
            fwd += time.perf_counter() - t
            res.append(r)
        return np.concatenate(res)
    ex = shap.KernelExplainer(f, np.zeros((1, M)))
    v = ex.shap_values(np.ones((1, M)), nsamples=nsamples, l1_reg=False, silent=True)
    total = time.perf_counter() - t0
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024  # own peak
print(json.dumps({{"total": total, "forward": fwd, "peak_mb": peak, "M": M}}))
"""


def images(quick: bool):
    n = 200 if quick else 1000
    code = _IMAGE_CHILD.format(root=str(ROOT))
    res = {}
    for which in ("onnxai", "shap"):
        p = subprocess.run([sys.executable, "-c", code, which, str(n)], capture_output=True, text=True,
                           env={**os.environ, "ONNXAI_QUIET": "1"})
        if p.returncode:
            print(f"{which} failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
            return
        res[which] = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"\nimages: efficientnet_lite0 on chelsea.png, {res['onnxai']['M']} superpixels, nsamples {n}, mean fill")
    print(f"{'':22s}{'total s':>9s}{'forward s':>10s}{'total/fwd':>10s}{'peak RSS MB':>12s}")
    for which, label in (("shap", "shap.KernelExplainer"), ("onnxai", "onnxai KernelSHAP")):
        r = res[which]
        print(f"{label:22s}{r['total']:9.2f}{r['forward']:10.2f}{r['total'] / r['forward']:10.3f}{r['peak_mb']:12.0f}")


def run(quick: bool = False):
    tabular(quick)
    accuracy(quick)
    designs(quick)
    images(quick)


if __name__ == "__main__":
    if "designs" in sys.argv:
        designs("--quick" in sys.argv)
    else:
        run("--quick" in sys.argv)
