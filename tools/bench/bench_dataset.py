"""explain-dataset on a folder of pictures: pictures/s of Grad-CAM and LIME (250 samples), local and on
Ray (2 actors x 1 thread), next to bare batched inference measured in the same run; peak RSS at 50
and 200 pictures.

The pictures (>= 200, 224..400 px) are made from scikit-image's sample pictures by crops and flips in a
temporary folder (never committed). Bare inference = decode + preprocess (Model.prepare, in the same
decoding threads, one batch ahead) + Model.scores in batches of 32: what a prediction pass over the
folder costs; both sides include loading the model (explain-dataset also hashes it and, for Grad-CAM,
builds the session that exposes the layer). Grad-CAM's goal: >= 0.9x its pictures/s. LIME runs on the first ``LIME_PICTURES`` only
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


def peak_rss(paths, tmp: Path, n: int) -> float:
    lst = tmp / f"list{n}.txt"
    lst.write_text("\n".join(str(p) for p in paths[:n]))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ONNXAI_QUIET": "1"}
    res = subprocess.run([sys.executable, "-c", RSS, str(MODEL), str(lst), str(tmp / f"rss{n}")], env=env,
                         capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> None:
    n = 40 if quick else 200
    lime_n = 8 if quick else 24
    with tempfile.TemporaryDirectory(prefix="onnxai-bench-dataset-") as tmp:
        tmp = Path(tmp)
        pics = tmp / "pics"
        pics.mkdir()
        paths = make_pictures(pics, n)
        lime_dir = tmp / "lime_pics"
        for p in paths[:lime_n]:
            (lime_dir / p.parent.name).mkdir(parents=True, exist_ok=True)
            os.link(p, lime_dir / p.parent.name / p.name)
        print(f"{n} pictures (320x320 JPEG from skimage.data by crops/flips); LIME on {lime_n}; CPU provider, "
              f"{os.cpu_count()} CPUs")
        bare_inference(paths[:32])  # warm-up: session, page cache
        bare = bare_inference(paths)
        print(f"| {'bare batched inference (decode + prepare + scores, batch 32)':<58} | {bare:7.1f} pictures/s |")
        gc_local = explain_rate(pics, "grad-cam", "local", tmp / "gc_local", n)
        bare2 = bare_inference(paths)
        ref = (bare + bare2) / 2
        print(f"| {'bare batched inference, again after Grad-CAM':<58} | {bare2:7.1f} pictures/s |")
        print(f"| {'grad-cam, local':<58} | {gc_local:7.1f} pictures/s | {gc_local / ref:.2f}x bare (goal >= 0.9)")
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
                lime_ray = explain_rate(lime_dir, "lime", "ray", tmp / "lime_ray", lime_n, workers=2,
                                        num_samples=250, batch_items=2)
                print(f"| {'lime 250 samples, ray 2 actors x 1 thread':<58} | {lime_ray:7.2f} pictures/s | "
                      f"{lime_ray / lime_local:.2f}x local")
            finally:
                import ray

                ray.shutdown()
        small = min(50, n)
        r50, r200 = peak_rss(paths, tmp, small), peak_rss(paths, tmp, n)
        print(f"| {'peak RSS, grad-cam local, %d pictures' % small:<58} | {r50:7.0f} MiB |")
        print(f"| {'peak RSS, grad-cam local, %d pictures' % n:<58} | {r200:7.0f} MiB | {r200 / r50:.2f}x")
