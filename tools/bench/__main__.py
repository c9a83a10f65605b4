"""Benchmarks (not tests): one run on this machine, printing ratios measured in that run.

    python -m tools.bench                 # every section
    python -m tools.bench lime cams       # only these sections
    python -m tools.bench --list

Each section is a module ``tools/bench/bench_<name>.py`` with ``run(quick: bool) -> None`` that
prints its own table. ``--quick`` shrinks the sizes for a smoke run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))  # the repository root, so `import onnxai` finds the checkout


def sections() -> list[str]:
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"sections to run (default all): {', '.join(sections())}")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--list", action="store_true", help="list the sections and exit")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(sections()))
        return
    os.environ.setdefault("ONNXAI_QUIET", "1")
    names = args.names or sections()
    unknown = [n for n in names if n not in sections()]
    if unknown:
        ap.error(f"unknown section(s) {unknown}; available: {sections()}")
    import platform

    print(f"# onnxai benchmarks on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    for name in names:
        print(f"\n## {name}")
        mod = importlib.import_module(f"tools.bench.bench_{name}")
        mod.run(quick=args.quick)


if __name__ == "__main__":
    main()
