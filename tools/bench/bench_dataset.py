"""explain-dataset on a folder of pictures: pictures/s of Grad-CAM and LIME (250 samples), local and on
Ray (2 actors x 1 thread), next to bare batched inference measured in the same run; peak RSS at 50
and 200 pictures.

The pictures (>= 200, 224..400 px) are made from scikit-image's sample pictures by crops and flips in a
temporary folder (never committed). Bare inference = decode + preprocess (Model.prepare, in the same
decoding threads, one batch ahead) + Model.scores in batches of 32: what a prediction pass over the
folder costs; both sides include loading the model (explain-dataset also hashes it and, for Grad-CAM,
builds the session that exposes the layer, while it plans). Grad-CAM's goal: >= 0.9x its pictures/s, measured
on 200 and on 1000 pictures (a fixed ~0.1 s per run: the plan, the model's hash, the second session and
the last batch's rows after the last pass, weighs more on the small folder) as the median of five
alternating rounds after one warm-up of each side, and once in a fresh process (imports included). Ray's Grad-CAM runs on both
folders too: the two times give its marginal rate (per core: what a cluster adds per core) and its fixed
cost per run (Ray Data's planning, starting the actor pool). LIME runs on the first ``lime_n`` only
(its rate is per picture; 250 forward passes each). Peak RSS is measured in a fresh process per size
(local Grad-CAM run), so the two figures compare (flat = bounded by batches and parts, not the set).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "efficientnet_lite0.onnx"
NAMES = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry", "hubble_deep_field",
         "motorcycle_left", "retina", "camera")


def make_pictures(folder: Path, n: int) -> list[Path]:
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(0)
    sources = []
    for name in NAMES:
        try:
            im = np.asarray(getattr(data, name)())
        except Exception:  # noqa: BLE001 - a picture that needs a download: skip it
            continue
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        sources.append(im[..., :3].astype(np.uint8))
    paths = []
    for i in range(n):
        im = sources[i % len(sources)]
        h, w = im.shape[:2]
        side = int(rng.integers(min(h, w) * 6 // 10, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = im[y:y + side, x:x + side]
        if i % 2:
            crop = crop[:, ::-1]
        if i % 3 == 1:
            crop = crop[::-1]
        p = folder / f"{i % 7}" / f"pic{i:04d}.jpg"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).resize((320, 320)).save(p, quality=90)
        paths.append(p)
    return paths


def bare_inference(paths, batch: int = 32, threads: int = 2) -> float:
    import onnxai

    t0 = time.perf_counter()  # the model's load counted on both sides, as in explain_rate
    model = onnxai.load(MODEL, providers="cpu")
    batches = [paths[i:i + batch] for i in range(0, len(paths), batch)]
    with ThreadPoolExecutor(threads) as pool:
        nxt = [pool.submit(model.prepare, p) for p in batches[0]]
        for k in range(len(batches)):
            xs = [f.result()[0] for f in nxt]
            if k + 1 < len(batches):
                nxt = [pool.submit(model.prepare, p) for p in batches[k + 1]]
            model.scores(np.concatenate(xs))
    return len(paths) / (time.perf_counter() - t0)


def explain_rate(folder, method, engine, out, n, **kw) -> float:
    import onnxai

    t0 = time.perf_counter()
    s = onnxai.explain_dataset(MODEL, folder, methods=[method], out=out, engine=engine, progress=False,
                               force=True, model_options={"providers": "cpu"}, **kw)
    assert s.failed == 0 and s.done == n, s.line()
    return n / (time.perf_counter() - t0)


RSS = """
import resource, sys, onnxai
s = onnxai.explain_dataset(sys.argv[1], sys.argv[2], methods=["grad-cam"], out=sys.argv[3], progress=False,
                           force=True, model_options={"providers": "cpu"})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def fresh_process(script: str, *args) -> float:
    """Run ``script`` in a new Python on this checkout; -> the number on its last line of output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ONNXAI_QUIET": "1"}
    res = subprocess.run([sys.executable, "-c", script, str(MODEL), *map(str, args)], env=env,
                         capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def peak_rss(paths, tmp: Path, n: int) -> float:
    lst = tmp / f"list{n}.txt"
    lst.write_text("\n".join(str(p) for p in paths[:n]))
    return fresh_process(RSS, lst, tmp / f"rss{n}")


def gradcam_vs_bare(pics: Path, paths: list, out: Path, rounds: int = 5) -> tuple[float, float, float]:
    """(bare pictures/s, grad-cam pictures/s, median ratio) from ``rounds`` alternating runs of each in this
    process, after one warm-up of each (imports, compiled kernels, the page cache: once per process, not
    per picture). Alternating and taking the median of the per-round ratios keeps this machine's drift
    out of the figure."""
    n = len(paths)
    bare_inference(paths[:64])
    explain_rate(pics, "grad-cam", "local", out / "warm", n)
    bares, gcs = [], []
    for r in range(rounds):
        bares.append(bare_inference(paths))
        gcs.append(explain_rate(pics, "grad-cam", "local", out / f"gc{r}", n))
    ratios = sorted(g / b for g, b in zip(gcs, bares))
    return float(np.median(bares)), float(np.median(gcs)), ratios[len(ratios) // 2]


FIRST = """
import sys, time
t0 = time.perf_counter()
import onnxai
s = onnxai.explain_dataset(sys.argv[1], sys.argv[2], methods=["grad-cam"], out=sys.argv[3], progress=False,
                           force=True, model_options={"providers": "cpu"})
print(s.done / (time.perf_counter() - t0))
"""


def first_run_rate(folder: Path, out: Path) -> float:
    """Grad-CAM pictures/s of a fresh process, imports included: what one CLI run over the folder gets."""
    return fresh_process(FIRST, folder, out)


def run(quick: bool = False) -> None:
    n = 40 if quick else 200
    big = 80 if quick else 1000
    lime_n = 8 if quick else 24
    with tempfile.TemporaryDirectory(prefix="onnxai-bench-dataset-") as tmp:
        tmp = Path(tmp)
        pics, big_pics = tmp / "pics", tmp / "big"
        pics.mkdir()
        big_pics.mkdir()
        paths = make_pictures(pics, n)
        big_paths = make_pictures(big_pics, big)
        lime_dir = tmp / "lime_pics"
        for p in paths[:lime_n]:
            (lime_dir / p.parent.name).mkdir(parents=True, exist_ok=True)
            os.link(p, lime_dir / p.parent.name / p.name)
        print(f"{n} and {big} pictures (320x320 JPEG from skimage.data by crops/flips); LIME on {lime_n}; CPU "
              f"provider, {os.cpu_count()} CPUs; Grad-CAM vs bare: median of 5 alternating rounds after a warm-up")
        bares = {}
        for folder, ps in ((pics, paths), (big_pics, big_paths)):
            bare, gc, ratio = gradcam_vs_bare(folder, ps, tmp / f"gc_{len(ps)}")
            bares[len(ps)] = bare
            print(f"| {'bare batched inference, %d pictures (decode + prepare + scores, batch 32)' % len(ps):<58} "
                  f"| {bare:7.1f} pictures/s |")
            print(f"| {'grad-cam, local, %d pictures' % len(ps):<58} | {gc:7.1f} pictures/s | {ratio:.3f}x bare "
                  "(goal >= 0.9)")
        ref = bares[n]  # the LIME and Ray figures run on the first folder
        cold = first_run_rate(pics, tmp / "cold")
        print(f"| {'grad-cam, local, %d pictures, fresh process (imports in)' % n:<58} | {cold:7.1f} pictures/s |")
        lime_local = explain_rate(lime_dir, "lime", "local", tmp / "lime_local", lime_n, num_samples=250)
        print(f"| {'lime 250 samples, local':<58} | {lime_local:7.2f} pictures/s | "
              f"{lime_local * 251 / ref:.2f}x bare per forward pass")
        try:
            import ray  # noqa: F401
        except ImportError:
            print("(ray is not installed: pip install 'onnxai[ray]' for the Ray figures)")
        else:
            from onnxai.dataset import ray_engine

            ray_engine.connect(None, num_cpus=2)
            try:
                explain_rate(pics, "grad-cam", "ray", tmp / "warm", n, workers=2)  # actors' first start
                gc_ray = explain_rate(pics, "grad-cam", "ray", tmp / "gc_ray", n, workers=2, threads_per_worker=1)
                print(f"| {'grad-cam, ray 2 actors x 1 thread':<58} | {gc_ray:7.1f} pictures/s | "
                      f"{gc_ray / ref:.2f}x bare")
                gc_ray_big = explain_rate(big_pics, "grad-cam", "ray", tmp / "gc_ray_big", big, workers=2,
                                          threads_per_worker=1)
                t_small, t_big = n / gc_ray, big / gc_ray_big  # the same run on two sizes: its fixed cost
                marginal = (big - n) / (t_big - t_small)      # (planning, the actor pool) and its rate
                print(f"| {'grad-cam, ray 2 x 1, %d pictures' % big:<58} | {gc_ray_big:7.1f} pictures/s | "
                      f"{gc_ray_big / bares[big]:.2f}x bare")
                print(f"| {'grad-cam, ray: marginal rate (%d vs %d pictures)' % (big, n):<58} | {marginal:7.1f} "
                      f"pictures/s | fixed {t_small - n / marginal:.1f} s a run; {marginal / 2:.0f} pictures/s per core")
                lime_ray = explain_rate(lime_dir, "lime", "ray", tmp / "lime_ray", lime_n, workers=2,
                                        num_samples=250, batch_items=2)
                print(f"| {'lime 250 samples, ray 2 actors x 1 thread':<58} | {lime_ray:7.2f} pictures/s | "
                      f"{lime_ray / lime_local:.2f}x local")
            finally:
                import ray

                ray.shutdown()
        small = min(50, n)
        r50 = peak_rss(paths, tmp, small)
        print(f"| {'peak RSS, grad-cam local, %d pictures' % small:<58} | {r50:7.0f} MiB |")
        for k, ps in ((n, paths), (big, big_paths)):
            if k == small:  # --quick: the first folder is the small size already
                continue
            r = peak_rss(ps, tmp, k)
            print(f"| {'peak RSS, grad-cam local, %d pictures' % k:<58} | {r:7.0f} MiB | {r / r50:.2f}x")
