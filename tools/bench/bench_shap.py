"""Kernel SHAP: onnxai vs shap.KernelExplainer fed the same onnxruntime session.

Tabular: a scikit-learn random forest on breast cancer (30 features) exported with skl2onnx, 20 rows,
nsamples 1000, a k-means background of 10 rows (shap.kmeans and onnxai's summary are identical).
Reported: total seconds, seconds inside the model, overhead = total / model. Error against exact
Shapley values: a forest on the first 12 features (2^12 coalitions enumerated gives the exact values
of the same value function) at the same budget of 1000 coalitions, max |phi - exact| over rows.

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
    ks = onnxai.KernelSHAP(nsamples=1000, background=X, background_size=10, seed=0)
    ks.explain(model, rows[:1])  # compile the kernels, summarise the background once
    t = time.perf_counter()
    e = ks.explain(model, rows)
    o_total = time.perf_counter() - t
    o_model = e.timings["forward"]
    v, s_total, s_model, s_rows = _shap(model, ks.background, rows, 1000)
    print(f"tabular: random forest (100 trees), breast cancer 30 features, {n_rows} rows, nsamples 1000, "
          f"k-means background 10 rows")
    print(f"{'':22s}{'total s':>9s}{'model s':>9s}{'overhead':>10s}")
    print(f"{'shap.KernelExplainer':22s}{s_total:9.3f}{s_model:9.3f}{s_total / s_model:10.2f}   ({s_rows} rows scored)")
    print(f"{'onnxai KernelSHAP':22s}{o_total:9.3f}{o_model:9.3f}{o_total / o_model:10.2f}")
    print(f"end to end: onnxai is {s_total / o_total:.1f}x faster; max |onnxai - shap| = {np.abs(e.values - v).max():.4f}")

    # error against exact Shapley values (12 features: enumeration is the exact value)
    X12, proto12 = _forest(12)
    m12 = onnxai.load(proto12, providers="cpu")
    rows12 = X12[:n_rows]
    bg12 = onnxai.tabular.summarise(X12, 10, "kmeans", 0)
    exact = onnxai.KernelSHAP(nsamples=2 ** 12, background=bg12).explain(m12, rows12)
    errs_o, errs_s, rms_o, rms_s = [], [], [], []
    for seed in range(3 if quick else 10):
        ks12 = onnxai.KernelSHAP(nsamples=1000, background=bg12, seed=seed)
        eo = ks12.explain(m12, rows12)
        vs, *_ = _shap(m12, ks12.background, rows12, 1000, seed=seed)
        errs_o.append(np.abs(eo.values - exact.values).max())
        errs_s.append(np.abs(vs - exact.values).max())
        rms_o.append(np.sqrt(np.mean((eo.values - exact.values) ** 2)))
        rms_s.append(np.sqrt(np.mean((vs - exact.values) ** 2)))
    print(f"error vs exact Shapley (forest on 12 features; 2^12 coalitions enumerated = exact; {n_rows} rows, "
          f"budget 1000, {len(errs_o)} seeds each):")
    print(f"{'':22s}{'mean RMSE':>10s}{'mean max':>10s}{'worst max':>10s}")
    for label, r, m in (("shap.KernelExplainer", rms_s, errs_s), ("onnxai KernelSHAP", rms_o, errs_o)):
        print(f"{label:22s}{np.mean(r):10.5f}{np.mean(m):10.5f}{max(m):10.5f}")


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
    onnxai.KernelSHAP(nsamples=8, num_features=k, progress=False).explain(model, pic)
t0 = time.perf_counter()
if which == "onnxai":
    ks = onnxai.KernelSHAP(nsamples=nsamples, num_features=k, fill="mean", seed=0, progress=False)
    e = ks.explain(model, pic)
    total = time.perf_counter() - t0
    fwd = e.timings["forward"]
    M = e.extras["num_features"]
else:
    import shap
    segments = features.segment(crop, method="slic", num_features=k, seed=0)
    M = int(segments.max()) + 1
    base = onnxai.methods.base.make_fill(model, crop, x, "mean")
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
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    images(quick)


if __name__ == "__main__":
    run("--quick" in sys.argv)
