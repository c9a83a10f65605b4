"""NBDT on the shipped EfficientNet-Lite0 and samples/*.png: how often the tree agrees with the network,
how deep its paths are, and what it costs.

Prints, from one run (CPU provider):
- the induced hierarchy: time to build it (scikit-learn Ward clustering of 1000 class vectors, names,
  node vectors), depth of the leaves (min / mean / max);
- per picture and per setting (mode soft / hard x node vectors "logits" / "normalised"): the tree's
  leaf, whether it is the network's top-1, the depth of its path, the tree's probability of that leaf,
  and the rank of the network's top-1 among the soft leaf probabilities;
- agreement with the network's top-1 over the pictures, per setting (the paper reports the accuracy
  lost without tree-supervised fine-tuning; this is that loss for a network that never saw the tree);
- time: the one forward pass that exposes the pooled and spatial features, against a bare forward
  pass; then the tree's decision (node scores, soft leaf probabilities, greedy descent) and the
  per-decision maps in microseconds (median of many);
- if the ``nbdt`` package imports (``pip install --no-deps nbdt`` into a folder on PYTHONPATH; torch
  and networkx needed; its WordNet, model-zoo and pytorchcv imports are stubbed, as nothing here
  downloads): its ``graph.build_induced_graph`` on the same weight matrix, compared with ours node by
  node (the set of classes under every inner node).
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "efficientnet_lite0.onnx"
SAMPLES = sorted((ROOT / "samples").glob("*.png"))
SETTINGS = [("soft", "logits"), ("hard", "logits"), ("soft", "normalised"), ("hard", "normalised")]


def _median_us(f, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e6


def run(quick: bool = False):
    import onnxai
    from onnxai.methods.nbdt import NBDT, head_of
    from onnxai.methods.nbdt_tree import induce

    model = onnxai.load(MODEL, providers="cpu")
    head = head_of(model)
    labels = [model.label(k) for k in range(head.weight.shape[0])]
    induce(head.weight[:4], labels[:4])  # import scikit-learn outside the timing
    t0 = time.perf_counter()
    h = induce(head.weight, labels)
    build = time.perf_counter() - t0
    depth = h.depths()
    print(f"hierarchy: {h.num_classes} classes, built in {build * 1000:.0f} ms (Ward on normalised class vectors); "
          f"leaf depth min {depth.min()} / mean {depth.mean():.1f} / max {depth.max()}")
    a, b = h.kids(h.root)
    print(f"root: {len(h.leaves(a))} classes ({h.names[a]}) | {len(h.leaves(b))} classes ({h.names[b]})")

    print("\n| picture | network top-1 (p) | setting | tree leaf | agrees | depth | tree p(leaf) | rank of top-1 |")
    print("|---|---|---|---|---|---|---|---|")
    agree = {s: 0 for s in SETTINGS}
    depths = {s: [] for s in SETTINGS}
    for pic in SAMPLES:
        for mode, vectors in SETTINGS:
            method = NBDT(mode=mode, vectors=vectors)
            e = method.explain(model, pic)
            top1 = e.extras["network_top1"]
            x, _ = model.prepare(pic)
            probs = model.run_batch(x)[0]
            d = method.tree(model).decide(model.activations(x, [head.pooled])[0][head.pooled].reshape(-1).astype(np.float64))
            rank = 1 + int(np.sum(d.leaf_probs > d.leaf_probs[top1]))
            agree[(mode, vectors)] += e.extras["agrees"]
            depths[(mode, vectors)].append(e.extras["depth"])
            print(f"| {pic.name} | {model.label(top1)} ({probs[top1]:.2f}) | {mode}/{vectors} | {e.label} | "
                  f"{'yes' if e.extras['agrees'] else 'no'} | {e.extras['depth']} | {e.extras['leaf_probability']:.3f} | {rank} |")
    print("\n| setting | agreement with the network's top-1 | mean path depth |")
    print("|---|---|---|")
    for s in SETTINGS:
        print(f"| {s[0]}/{s[1]} | {agree[s]}/{len(SAMPLES)} | {np.mean(depths[s]):.1f} |")

    # ---------------------------------------------------------------- time
    x, crop = model.prepare(SAMPLES[0])
    n = 5 if quick else 20
    method = NBDT(mode="soft")
    tree = method.tree(model)
    for _ in range(2):
        model.run_batch(x)
        model.activations(x, [head.features, head.pooled])
    bare, exposed, after, maps = [], [], [], []
    for _ in range(n):  # interleaved, so each decision is timed right after a forward pass, as in explain()
        t0 = time.perf_counter()
        model.run_batch(x)
        t1 = time.perf_counter()
        acts, _ = model.activations(x, [head.features, head.pooled])
        t2 = time.perf_counter()
        f = acts[head.pooled].reshape(-1).astype(np.float64)
        dd = tree.decide(f)
        t3 = time.perf_counter()
        leaf = int(np.argmax(dd.leaf_probs))
        tree.explain_path(leaf, dd, acts[head.features][0].astype(np.float64))
        t4 = time.perf_counter()
        bare.append(t1 - t0), exposed.append(t2 - t1), after.append(t3 - t2), maps.append(t4 - t3)
    bare, exposed, after, maps = (float(np.median(v)) * 1e6 for v in (bare, exposed, after, maps))
    alone = _median_us(lambda: tree.decide(f), 200)
    whole = _median_us(lambda: method.explain(model, SAMPLES[0]), n)
    prep = _median_us(lambda: model.prepare(SAMPLES[0]), n)
    print(f"\ntime (medians of {n}): bare forward {bare / 1000:.1f} ms; the forward pass exposing the features "
          f"{exposed / 1000:.1f} ms ({exposed / bare:.2f}x); then the tree's decision {after:.0f} us "
          f"({alone:.0f} us when not right after onnxruntime) and the {len(tree.h.path_to(leaf))} decision maps "
          f"{maps:.0f} us; explain() on the file {whole / 1000:.1f} ms against prepare + one bare forward "
          f"{(prep + bare) / 1000:.1f} ms ({whole / (prep + bare):.2f}x)")

    _compare_with_package(head.weight, h)


def _compare_with_package(weight, ours):
    """The nbdt package's induced hierarchy on the same weight, node by node."""
    try:
        graph = _import_nbdt_graph()
    except Exception as e:  # noqa: BLE001 - any failure means "not available here"
        print(f"\nnbdt package: not importable here ({type(e).__name__}: {e}); comparison skipped")
        return
    import torch
    from onnxai.methods.nbdt_tree import induce

    K = weight.shape[0]
    wnids = [f"f{k:08d}" for k in range(K)]
    G = graph.build_induced_graph(wnids, checkpoint=None, state_dict={"fc.weight": torch.tensor(weight)})
    theirs = _leaf_sets(G, wnids)
    raw = induce(weight, normalise=False)
    for name, h in (("raw rows (the package's code)", raw), ("normalised rows (the paper, our default)", ours)):
        mine = {frozenset(int(k) for k in h.leaves(n)) for n in range(K, h.root + 1)}
        same = len(mine & theirs)
        print(f"nbdt package vs ours on {name}: {same}/{len(theirs)} inner nodes hold the same classes"
              f"{' (identical trees)' if same == len(theirs) == len(mine) else ''}")


def _leaf_sets(G, wnids) -> set:
    index = {w: i for i, w in enumerate(wnids)}
    out = set()
    for node in G.nodes:
        if G.succ[node]:
            import networkx as nx

            out.add(frozenset(index[d] for d in nx.descendants(G, node) if d in index))
    return out


def _import_nbdt_graph():
    """nbdt.graph with its network-only imports stubbed: WordNet lookups fail (every node becomes the
    package's FakeSynset), the pytorchcv model zoo is empty, and scikit-learn's renamed ``affinity``
    argument is passed on as ``metric``."""
    if "nltk" not in sys.modules:
        nltk = types.ModuleType("nltk")
        corpus = types.ModuleType("nltk.corpus")

        class _NoWordNet:
            def synset_from_pos_and_offset(self, *a):
                raise LookupError("WordNet is not available offline")

        corpus.wordnet = _NoWordNet()
        nltk.corpus = corpus
        sys.modules.update({"nltk": nltk, "nltk.corpus": corpus})
    for name in ("pytorchcv", "pytorchcv.models", "pytorchcv.models.efficientnet", "pytorchcv.models.wrn_cifar"):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__all__ = []
            for attr in ("wrn28_10_cifar10", "wrn28_10_cifar100", "get_wrn_cifar"):
                setattr(mod, attr, None)
            sys.modules[name] = mod
    import contextlib
    import io
    import os

    from sklearn.cluster import AgglomerativeClustering

    saved = os.dup(2)  # nbdt.utils asks `stty size` for its progress bar at import: keep its noise off the table
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(io.StringIO()):
            os.dup2(null.fileno(), 2)
            import nbdt.graph as graph
    finally:
        os.dup2(saved, 2)
        os.close(saved)

    def clustering(linkage="ward", n_clusters=2, affinity="euclidean"):
        return AgglomerativeClustering(linkage=linkage, n_clusters=n_clusters, metric=affinity)

    graph.AgglomerativeClustering = clustering
    graph.get_wordnet_meaning = lambda G, synsets: graph.FakeSynset.create_from_offset(len(G.nodes))
    return graph
