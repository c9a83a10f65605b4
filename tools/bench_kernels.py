"""Throughput of the compositing and resizing kernels, serial against prange, on this machine.

    python tools/bench_kernels.py [--n 64] [--size 224] [--repeat 15] [--only composite|resize]
    NUMBA_THREADING_LAYER=workqueue python tools/bench_kernels.py   # the other threading layer

The compositing wrappers run serially unless called with parallel=True, and resize_stack switches to
its prange kernel above a size threshold; this tool times both kernels of each pair.  It prints the
median time per call and the speed-up of the prange version (x > 1 means prange helps);
onnxai.kernels.composite and onnxai.kernels.resize cite these numbers for their choices.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import onnxai.kernels  # noqa: F401  (loads the submodules below)

comp = sys.modules["onnxai.kernels.composite"]
mk = sys.modules["onnxai.kernels.masks"]
rs = sys.modules["onnxai.kernels.resize"]  # `import onnxai.kernels.resize` would name the function


def _median_seconds(fn, repeat: int) -> float:
    fn()  # compile / warm the caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _row(name: str, n: int, serial: float, parallel: float, values: int) -> None:
    gbs = values * 4 / serial / 1e9
    print(f"{name:<26} n={n:<4} serial {serial * 1e3:8.2f} ms ({gbs:5.2f} GB/s out)  "
          f"prange {parallel * 1e3:8.2f} ms  speed-up x{serial / parallel:4.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="largest batch (samples per chunk)")
    ap.add_argument("--size", type=int, default=224, help="image side")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--only", choices=("composite", "resize"), default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    C, H, W = 3, args.size, args.size
    x = rng.normal(size=(C, H, W)).astype(np.float32)
    b = np.zeros((C, H, W), np.float32)
    seg = (np.arange(H)[:, None] // 32 * 7 + np.arange(W)[None, :] // 32).astype(np.int32)
    k = int(seg.max()) + 1

    for n in sorted({4, 16, args.n}) if args.only != "resize" else ():
        out = np.empty((n, C, H, W), np.float32)
        nhwc = np.empty((n, H, W, C), np.float32).transpose(0, 3, 1, 2)
        bin_masks = mk.random_binary_masks(n, k, seed=1)
        soft = rng.random((n, H, W), dtype=np.float32)
        windows = mk.sliding_windows(H, W, 32, 16)[:n]
        cases = [
            ("features uint8 NCHW", comp._composite_features, comp._composite_features_parallel, (x, b, seg, bin_masks, out)),
            ("features uint8 NHWC view", comp._composite_features, comp._composite_features_parallel, (x, b, seg, bin_masks, nhwc)),
            ("soft NCHW", comp._composite_soft, comp._composite_soft_parallel, (x, b, soft, out)),
            ("windows NCHW", comp._composite_windows, comp._composite_windows_parallel, (x, b, windows, out)),
        ]
        for name, serial_fn, parallel_fn, fn_args in cases:
            serial = _median_seconds(lambda: serial_fn(*fn_args), args.repeat)
            parallel = _median_seconds(lambda: parallel_fn(*fn_args), args.repeat)
            _row(name, n, serial, parallel, out.size)
        print()

    for n_maps, side in () if args.only == "composite" else ((64, 14), (128, 7), (256, 7), (512, 7)):
        maps = rng.random((n_maps, side, side)).astype(np.float32)
        out = np.empty((n_maps, H, W), np.float32)
        for method in rs.METHODS:
            code = rs._METHOD_CODE[method]
            serial = _median_seconds(lambda: rs._resize_stack_serial(maps, out, code, False), args.repeat)
            parallel = _median_seconds(lambda: rs._resize_stack_parallel(maps, out, code, False), args.repeat)
            _row(f"resize {side}x{side} {method}", n_maps, serial, parallel, out.size)


if __name__ == "__main__":
    main()
