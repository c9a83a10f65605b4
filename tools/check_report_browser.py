"""Open an onnxai HTML report in real headless Chromium and check that the screenshot is not blank.

    python tools/check_report_browser.py out/report.html [--screenshot shot.png]
    python tools/check_report_browser.py --make      # build a small report from the shipped model first

Needs the Debian package ``chromium`` (apt-get install -y chromium). It runs with a fresh, empty
profile and no network features, as root-safe (--no-sandbox), and writes a 1200x900 screenshot.
Checks: the browser exits 0, the screenshot exists, is 1200x900, and is not one flat colour (at least
5% of its pixels differ from the background and it holds more than 16 distinct colours). Exit status
0 when every check passes; the screenshot path is printed so it can be looked at.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no Chromium found; install it with: apt-get install -y chromium")


def screenshot(html: Path, out: Path, size=(1200, 900), timeout: float = 120.0) -> subprocess.CompletedProcess:
    browser = find_chromium()
    with tempfile.TemporaryDirectory(prefix="onnxai-chromium-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={out}",
               f"--window-size={size[0]},{size[1]}", html.resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check_screenshot(path: Path, size=(1200, 900)) -> list[str]:
    """Problems with the screenshot (empty list: it shows a rendered page)."""
    if not path.exists():
        return [f"no screenshot at {path}"]
    img = np.asarray(Image.open(path).convert("RGB"))
    problems = []
    if (img.shape[1], img.shape[0]) != tuple(size):
        problems.append(f"screenshot is {img.shape[1]}x{img.shape[0]}, expected {size[0]}x{size[1]}")
    flat = img.reshape(-1, 3)
    values, counts = np.unique(flat, axis=0, return_counts=True)
    background = values[np.argmax(counts)]
    differ = float(np.mean(np.any(flat != background, axis=1)))
    if differ < 0.05:
        problems.append(f"only {differ:.1%} of the pixels differ from the background colour {background.tolist()}")
    if len(values) <= 16:
        problems.append(f"only {len(values)} distinct colours: no pictures rendered")
    return problems


def make_report(out_dir: Path) -> Path:
    """A small report from the shipped model: occlusion (coarse) and LIME (few samples) on chelsea."""
    import onnxai
    from onnxai import metrics
    from onnxai.report import Report

    model = onnxai.load(ROOT / "models" / "efficientnet_lite0.onnx", providers="cpu")
    image = ROOT / "samples" / "chelsea.png"
    expls = [onnxai.Occlusion(window=56, stride=28).explain(model, image),
             onnxai.LIME(num_samples=200, seed=0).explain(model, image)]
    prep = metrics.prepare(model, image)
    scores = {(e.method, e.target): metrics.score_explanation(model, e, image=prep, step=224 * 8) for e in expls}
    t = expls[0].target
    scores[(metrics.RANDOM, t)] = metrics.score_map(model, prep, metrics.random_map(prep.crop.shape[:2]), t,
                                                    method=metrics.RANDOM, step=224 * 8)
    rep = Report("onnxai browser check", model=model)
    rep.add_picture(str(image), prep.crop, model.top(prep.probs, 5), expls, scores)
    return rep.save(out_dir / "report.html", force=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", nargs="?", type=Path, help="the HTML file to open")
    ap.add_argument("--make", action="store_true", help="build a small report from the shipped model first")
    ap.add_argument("--screenshot", type=Path, default=None, help="where to write the PNG (default: next to the report)")
    args = ap.parse_args(argv)
    if args.make:
        args.report = make_report(Path(tempfile.mkdtemp(prefix="onnxai-report-")))
    if args.report is None:
        ap.error("give a report or --make")
    shot = args.screenshot or args.report.with_name(args.report.stem + "_screenshot.png")
    proc = screenshot(args.report, shot)
    problems = [] if proc.returncode == 0 else [f"chromium exited {proc.returncode}: {proc.stderr.strip()[-400:]}"]
    problems += check_screenshot(shot)
    print(f"report     {args.report}")
    print(f"screenshot {shot}")
    for p in problems:
        print(f"FAIL: {p}")
    if not problems:
        print("OK: the report renders in headless Chromium")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
