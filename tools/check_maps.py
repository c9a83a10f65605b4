"""Refactor guard: save every method's maps with explicit parameters, and later compare against them.

    python tools/check_maps.py save  before.npz     # on the code as it was
    python tools/check_maps.py check before.npz     # on the changed code: max |difference| per entry

Each entry is (picture or table, method, variant, target) -> map, importance (per feature or channel)
and the stored score. ``check`` prints every entry whose arrays differ by more than ``--tol`` (1e-6)
and exits 1 if any does. Parameters use the names of the first release; the renamed methods accept
them as deprecated aliases, so the same script runs on both sides of a refactor.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "efficientnet_lite0.onnx"
PICTURES = [ROOT / "samples" / "chelsea.png", ROOT / "samples" / "coffee.png"]

# (method, variant, parameters): explicit values for everything that is sampled or chosen
PICTURE_RUNS = [
    ("lime", "tree", dict(num_features=30, num_samples=300, surrogate="tree", fill="mean", seed=1)),
    ("lime", "ridge-segmean", dict(num_features=30, num_samples=300, surrogate="ridge", fill="segment-mean", seed=1)),
    ("lime", "lasso-grid", dict(num_features=36, num_samples=300, surrogate="linear", segmentation="grid",
                                upsample="bicubic", fill="blur", seed=2)),
    ("kernel-shap", "stratified", dict(nsamples=300, num_features=30, fill="mean", seed=1)),
    ("kernel-shap", "shap-design", dict(nsamples=300, num_features=30, fill="black", sampling="shap", seed=1)),
    ("kernel-shap", "logits", dict(nsamples=200, num_features=20, fill="mean", kind="logits", seed=3)),
    ("occlusion", "mean", dict(window=32, stride=16, fill="mean")),
    ("occlusion", "logits-clip", dict(window=40, stride=24, fill="zero", clip_mode="clip", kind="logits")),
    ("rise", "default", dict(num_masks=300, cells=7, p=0.5, seed=1)),
    ("score-cam", "authors", dict(preset="authors")),
    ("score-cam", "paper", dict(preset="paper")),
    ("score-cam", "pytorch-grad-cam", dict(preset="pytorch-grad-cam")),
    ("cam", "auto", dict(layer="auto")),
    ("grad-cam", "auto", dict(layer="auto")),
    ("grad-cam", "elementwise", dict(layer="getitem_144", gradient="elementwise")),
    ("grad-cam", "central", dict(layer="add_626", gradient="central")),
]


def _table_model():
    """A small non-linear table classifier (4 columns, 3 classes) built with onnx.helper."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    W1 = rng.standard_normal((4, 6)).astype(np.float32)
    W2 = rng.standard_normal((6, 3)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W1"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
         helper.make_node("MatMul", ["t", "W2"], ["z"]), helper.make_node("Softmax", ["z"], ["p"], axis=1)],
        "table", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 3])],
        initializer=[numpy_helper.from_array(W1, "W1"), numpy_helper.from_array(W2, "W2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m, rng.standard_normal((40, 4)), rng.standard_normal((3, 4))


def collect() -> dict[str, np.ndarray]:
    import onnxai

    warnings.simplefilter("ignore", DeprecationWarning)
    out: dict[str, np.ndarray] = {}
    model = onnxai.load(MODEL, providers="cpu")
    for pic in PICTURES:
        for method, variant, params in PICTURE_RUNS:
            obj = onnxai.make_method(method, **params, **({"progress": False} if method in (
                "lime", "kernel-shap", "occlusion", "rise", "score-cam") else {}))
            for e in obj.explain(model, str(pic), target="top2"):
                key = f"{pic.stem}/{method}/{variant}/{e.target}"
                out[key + "/map"] = np.asarray(e.map, np.float32)
                if e.importance is not None:
                    out[key + "/importance"] = np.asarray(e.importance, np.float32)
                out[key + "/score"] = np.float64(e.score)
            print(f"{pic.stem} {method} {variant}", file=sys.stderr)
    import tempfile

    import onnx

    proto, background, rows = _table_model()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "table.onnx"
        onnx.save(proto, path)
        table = onnxai.load(path, providers="cpu")
        shap = onnxai.KernelSHAP(nsamples=12, background=background, background_size=5, seed=4)
        e = shap.explain(table, rows)
        out["table/kernel-shap/values"] = np.asarray(e.values, np.float64)
        out["table/kernel-shap/base"] = np.asarray(e.base_values, np.float64)
        lime = onnxai.LimeTabular(background, num_samples=400, seed=5)
        e = lime.explain(table, rows)
        out["table/lime/values"] = np.asarray(e.values, np.float64)
        out["table/lime/base"] = np.asarray(e.base_values, np.float64)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["save", "check"])
    ap.add_argument("path")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--ignore", action="append", default=[],
                    help="substring of entries whose change is intended (listed, not counted)")
    a = ap.parse_args(argv)
    now = collect()
    if a.action == "save":
        np.savez_compressed(a.path, **now)
        print(f"saved {len(now)} arrays to {a.path}")
        return 0
    before = dict(np.load(a.path))
    bad = 0
    missing = sorted(set(before) - set(now))
    for k in missing:
        print(f"MISSING {k}")
    worst = 0.0
    for k in sorted(before):
        if k not in now:
            continue
        b, n = before[k], now[k]
        diff = float(np.max(np.abs(b.astype(np.float64) - n.astype(np.float64)))) if b.shape == n.shape else np.inf
        intended = any(s in k for s in a.ignore)
        if diff > a.tol:
            print(f"{'INTENDED' if intended else 'CHANGED'} {k}: max |diff| {diff:.3g}")
            bad += not intended
        elif not intended:
            worst = max(worst, diff)
    print(f"{len(before)} arrays compared, {bad} changed beyond {a.tol}, {len(missing)} missing; "
          f"largest difference among the unchanged: {worst:.3g}")
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main())
