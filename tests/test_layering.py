"""The import graph of the onnxai package: no cycles, and imports flow one way, down the layers.

The graph is read from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` statement counts, at module level or inside a function, relative or absolute.
``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``. Importing
a submodule also runs its package's ``__init__``; that implicit edge is not counted (every package
that re-exports its submodules would otherwise be a "cycle").

Layers, bottom first. A module may import from its own layer and the layers below it, never above:

    0 base        errors, _log, safe_io              one exception family; notes on stderr; every
                                                     file written, text put in outputs, the small
                                                     files a user names read
    1 pure        kernels, graph, graph_shapes,      Numba kernels; ONNX surgery (graph.py: layers,
                  graph_ends, graph_input, grids,    heads, tails; graph_ends.py: batch axis, ZipMap,
                  preprocess, features, render       class labels; graph_input.py: the graph's own
                                                     input normalisation; grids.py: which tensors are
                                                     maps over the picture); preprocessing;
                                                     superpixels; pictures. Arrays and protos in,
                                                     arrays out.
    2 runtime     runtime                            providers, sessions, onnxruntime's noise
    3 model       model, model_layers,               Model; its input spec and output rule; its inner
                  model_preprocess, signature,       layers and tails; which preprocessing it gets;
                  classes, export                    the class axis (score kinds, labels); writing a
                                                     model
    4 engine      engine                             the perturb-and-score loop
    5 results     explanation, tables                Explanation; table data, backgrounds, results
    6 methods     methods                            one file per method (lime_tabular included)
    7 evaluation  metrics, sanity, report            faithfulness, randomisation check, HTML report
    8 dataset     dataset                            data-set runs: sources, Parquet store, local and
                                                     Ray engines
    9 api         api                                explain(), explain_dataset(): the entry points
   10 top         cli, _explain_csv, onnxai          commands; the package's re-exports

render is pure pictures (it imports errors only), so it sits with the other array-in/array-out
modules and tables/plots.py may draw with it. A new module must be given a layer here (the test
says so), and ALLOWED lists known violations, each with who fixes it; it should only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "onnxai"
PACKAGE = "onnxai"
MAX_LINES = 450

LAYERS = [
    ("base", ["errors", "_log", "safe_io"]),
    ("pure", ["kernels", "graph", "graph_shapes", "graph_ends", "graph_input", "grids", "heads", "preprocess", "features", "render", "render_tree"]),
    ("runtime", ["runtime"]),
    ("model", ["model", "model_layers", "model_preprocess", "signature", "classes", "export", "export_builders"]),
    ("engine", ["engine"]),
    ("results", ["explanation", "tables"]),
    ("methods", ["methods"]),
    ("evaluation", ["metrics", "sanity", "report"]),
    ("dataset", ["dataset"]),
    ("api", ["api"]),
    ("top", ["cli", "_explain_csv", ""]),  # "" is the package itself (onnxai/__init__.py)
]

# Known upward imports, (importer, imported): each is a debt with an owner. Remove an entry when it is
# fixed; the test fails on an entry that no longer happens, so the list can only shrink.
ALLOWED: set[tuple[str, str]] = set()


# --------------------------------------------------------------------------- the graph


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under root (a package is its __init__.py)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str | None:
    if not level:
        return name
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph(mods: dict[str, Path], package: str = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports (anywhere in its source)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_package, node.level, node.module)
                if base is None:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in mods else base)
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for t in targets:
                while t not in mods and "." in t:  # "import onnxai.kernels.masks.x" -> the nearest module
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != mod and (t == package or t.startswith(package + ".")):
                    edges[mod].add(t)
    return edges


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a closed path m0 -> m1 -> ... -> m0) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return [_path_within(comp, edges) for comp in components]


def _path_within(comp: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A closed path through a strongly connected component, from its first module back to it."""
    inside, start = set(comp), comp[0]
    parent, queue = {start: None}, [start]
    while queue:  # breadth first: the shortest way back to start
        v = queue.pop(0)
        for w in sorted(edges[v] & inside):
            if w == start:
                path = [v]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                return path[::-1] + [start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    return comp + [start]


def layer_of(module: str, package: str = PACKAGE) -> int | None:
    rel = module[len(package) + 1:] if module.startswith(package + ".") else ("" if module == package else None)
    if rel is None:
        return None
    best, best_len = None, -1
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            hit = rel == name or (name and rel.startswith(name + "."))
            if hit and len(name) > best_len:
                best, best_len = i, len(name)
    return best


def upward_imports(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(m, t) for m, ts in edges.items() for t in ts if layer_of(t) > layer_of(m)}


# --------------------------------------------------------------------------- the checks


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    return mods, import_graph(mods)


def test_no_import_cycles(graph):
    _, edges = graph
    cycles = find_cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_every_module_has_a_layer(graph):
    mods, _ = graph
    missing = sorted(m for m in mods if layer_of(m) is None)
    assert not missing, f"give these modules a layer in LAYERS (tests/test_layering.py): {missing}"


def test_imports_flow_down_the_layers(graph):
    _, edges = graph
    up = upward_imports(edges)
    new = sorted(up - ALLOWED)
    assert not new, "imports from a higher layer:\n" + "\n".join(
        f"  {m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})" for m, t in new)
    fixed = sorted(ALLOWED - up)
    assert not fixed, f"these ALLOWED entries no longer happen; remove them from the list: {fixed}"


def test_largest_module_is_under_the_limit(graph):
    mods, _ = graph
    sizes = sorted(((len(p.read_text(encoding="utf-8").splitlines()), m) for m, p in mods.items()), reverse=True)
    lines, name = sizes[0]
    assert lines < MAX_LINES, f"{name} has {lines} lines (limit {MAX_LINES}); over it: " + ", ".join(
        f"{m} {n}" for n, m in sizes if n >= MAX_LINES)


# --------------------------------------------------------------------------- the checker itself can fail


def test_checker_finds_planted_cycles_and_upward_imports(tmp_path):
    pkg = tmp_path / "onnxai"
    (pkg / "methods").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .api import explain\n")
    (pkg / "errors.py").write_text("")
    (pkg / "api.py").write_text("from .errors import E\ndef explain():\n    from .methods import lime\n")
    (pkg / "methods" / "__init__.py").write_text("")
    (pkg / "methods" / "lime.py").write_text("def f():\n    from onnxai.model import Model\n")
    (pkg / "model.py").write_text("def g():\n    from . import api\n")  # the planted cycle, upward
    mods = modules(pkg)
    edges = import_graph(mods)
    assert edges["onnxai.api"] == {"onnxai.errors", "onnxai.methods.lime"}
    assert edges["onnxai.methods.lime"] == {"onnxai.model"}
    cycles = find_cycles(edges)
    assert cycles == [["onnxai.api", "onnxai.methods.lime", "onnxai.model", "onnxai.api"]]
    assert upward_imports(edges) == {("onnxai.model", "onnxai.api")}
