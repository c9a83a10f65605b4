"""NBDT: a prediction explained as a path of decisions down a neural-backed decision tree (Wan et al.,
ICLR 2021; the ``nbdt`` package's SoftNBDT / HardNBDT), for any ONNX classifier with a linear head on
pooled features, from the graph alone: no fine-tuning, no WordNet, no torch.

    hierarchy   the induced hierarchy of the head's class vectors (``nbdt_tree``): computed once per
                model, or read from a JSON file (``hierarchy=PATH``: written there when missing), or
                from the model's metadata (``onnxai tree MODEL --embed OUT.onnx``)
    inference   one forward pass exposes the pooled features f (and the spatial features A they pool);
                every node n scores s_n = <f, r_n> + b_n. "hard": from the root, the child with the
                larger score, down to a leaf; "soft": a leaf's probability is the product, along its
                path, of the softmax over the two children's scores (paper section 3.1)
    why         the head is linear, so s_left - s_right = mean_ij sum_k (r_left - r_right)_k A_kij +
                b_left - b_right: the map of a decision is the CAM with channel weights
                r_chosen - r_other on A (exact, no extra pass); its mean plus the bias difference is
                the decision's margin

``target`` None or "top1" explains the tree's own prediction (hard: the leaf the descent reaches;
soft: the most probable leaf), "topK" the K most probable leaves, a class (index, label, list) the
path to that class. ``Explanation.score`` is the network's probability of the explained class;
``extras``: ``path`` (one step per decision: node, name, candidates with probabilities, chosen,
greedy choice, margin), ``maps`` (one low-resolution map per step, chosen minus other), the tree's
``prediction``, the network's ``network_top1`` and whether they agree. ``map`` is the sum of the
steps' maps upsampled: where the evidence for the whole path lies.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .._log import note
from ..errors import InputError, LayerError
from .base import resolve_targets
from .layers import LayerChoice, LayerMethod, as_stored, model_facts, upsample
from .nbdt_tree import LINKAGES, METADATA_KEY, VECTORS, Hierarchy, class_vectors, fingerprint, induce, read_names

MODES = ("soft", "hard")


class NBDT(LayerMethod):
    name = "nbdt"

    def __init__(self, mode: str = "soft", vectors: str = "logits", hierarchy=None, names=None,
                 linkage: str = "ward", normalise: bool = True, align_corners: bool = False):
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, not {mode!r}")
        if vectors not in VECTORS:
            raise InputError(f"vectors must be one of {VECTORS}, not {vectors!r}")
        if linkage not in LINKAGES:
            raise InputError(f"linkage must be one of {LINKAGES}, not {linkage!r}")
        self.mode = mode
        self.vectors = vectors
        self.hierarchy = hierarchy if hierarchy is None or isinstance(hierarchy, Hierarchy) else str(hierarchy)
        self.names = None if names is None else str(names)
        self.linkage = linkage
        self.normalise = bool(normalise)
        self.align_corners = bool(align_corners)

    # ------------------------------------------------------------------ the head and the tree
    def choose_layer(self, model) -> LayerChoice:
        head = head_of(model)
        return LayerChoice(head.features, "the features the linear head pools", head, None)

    def tree(self, model) -> "Tree":
        """The hierarchy and its node vectors for ``model``, built once per model and settings."""
        head = head_of(model)
        memo = model_facts(model).setdefault("nbdt", {})
        key = (id(self.hierarchy) if isinstance(self.hierarchy, Hierarchy) else self.hierarchy,
               self.names, self.linkage, self.normalise, self.vectors)
        if key not in memo:
            h, source = self._hierarchy(model, head)
            if self.names is not None:
                h.rename(read_names(self.names))
            memo[key] = Tree(h, head, self.vectors, source)
        return memo[key]

    def _hierarchy(self, model, head) -> tuple[Hierarchy, str]:
        fp = fingerprint(head.weight)
        labels = [model.label(k) for k in range(head.weight.shape[0])]
        h = self.hierarchy
        if isinstance(h, Hierarchy):
            return _checked(h, fp, "the hierarchy given"), "given"
        if isinstance(h, str):
            path = Path(h)
            if path.exists():
                return _checked(Hierarchy.load(path), fp, str(path)), str(path)
            built = induce(head.weight, labels, self.linkage, self.normalise)
            built.save(path)
            note(f"nbdt: wrote the induced hierarchy to {path} (read from there next time)")
            return built, f"induced, cached in {path}"
        meta = getattr(model, "metadata", {}).get(METADATA_KEY)
        if meta:
            import json

            try:
                cached = Hierarchy.from_dict(json.loads(meta), "the model's metadata")
            except (ValueError, InputError) as e:
                note(f"nbdt: ignoring the hierarchy in the model's metadata ({e})")
            else:
                if cached.fingerprint == fp:
                    return cached, "the model's metadata"
                note("nbdt: the hierarchy in the model's metadata was built for another head; inducing a new one")
        return induce(head.weight, labels, self.linkage, self.normalise), "induced"

    # ------------------------------------------------------------------ one forward pass
    def first_layers(self, model) -> dict[str, str]:
        head = head_of(model)
        return {"acts": head.features, "pooled": head.pooled}

    def _decide(self, model, pooled):
        """(the tree, its descent on the pooled features, the tree's prediction)."""
        tree = self.tree(model)
        d = tree.decide(np.asarray(pooled, np.float64).reshape(-1))
        return tree, d, (d.hard_leaf if self.mode == "hard" else int(np.argmax(d.leaf_probs)))

    def resolve(self, model, probs, extra, target):
        """"top1" (the default) and "topK" rank the tree's leaves; a class or a list as usual."""
        if target is None or (isinstance(target, str) and target.lower().startswith("top") and target[3:].isdigit()):
            k = 1 if target is None else int(target[3:])
            if k < 1:
                raise InputError("topK needs K >= 1")
            _, d, prediction = self._decide(model, extra["pooled"])
            order = [prediction] + [int(i) for i in np.argsort(-d.leaf_probs, kind="stable") if i != prediction]
            return order[:k], k == 1
        return resolve_targets(model, probs, target)

    def _explain(self, model, x, crop, probs, targets, acts=None, pooled=None):
        t1 = time.perf_counter()
        tree, d, prediction = self._decide(model, pooled)
        t2 = time.perf_counter()
        layer = self.read_layer(model, x, acts)
        A = layer.maps[0].astype(np.float64)  # (K, h, w)
        H, W = crop.shape[:2]
        top1 = int(np.argmax(probs))
        results = []
        for t in targets:
            t3 = time.perf_counter()
            steps, low = tree.explain_path(t, d, A)
            total_low = as_stored(low.sum(axis=0) if len(low) else np.zeros(A.shape[1:]))
            map_ = upsample(total_low, H, W, self.align_corners)
            e = self._explanation(model, t, probs, map_, raw_map=np.asarray(total_low, np.float32))
            e.extras.update(
                mode=self.mode, vectors=self.vectors, hierarchy=tree.source, layer=layer.choice.name,
                layer_choice=layer.choice.how, prediction=prediction, prediction_label=model.label(prediction),
                network_top1=top1, network_top1_label=model.label(top1), agrees=bool(prediction == top1),
                leaf_probability=float(d.leaf_probs[t]), depth=len(steps),
                path=steps, maps=[m.astype(np.float32) for m in low])
            e.timings.update(decide=t2 - t1, maps=time.perf_counter() - t3)
            results.append(e)
        return results

    def report_section(self, report, model, explanations) -> None:
        """The browsable tree in an HTML report, the paths of ``explanations`` opened and marked."""
        report.add_tree(self.tree(model).h, explanations)

    def picture(self, expl, alpha: float = 0.5, cmap: str | None = None):
        """The path picture (``onnxai explain --method nbdt`` writes it instead of the plain overlay)."""
        from ..render_tree import path_picture

        return path_picture(expl, alpha=alpha, cmap=cmap)


class Decision:
    """One descent: node scores (2K - 1,), each node's probability given its parent, the soft leaf
    probabilities (K,), and the hard (greedy) leaf."""

    def __init__(self, scores, p_node, leaf_probs, hard_leaf):
        self.scores, self.p_node, self.leaf_probs, self.hard_leaf = scores, p_node, leaf_probs, hard_leaf


class Tree:
    """A hierarchy with its node vectors (an averaging matrix over the class rows), and each leaf's path."""

    def __init__(self, hierarchy: Hierarchy, head, vectors: str, source: str):
        self.h, self.source = hierarchy, source
        K = hierarchy.num_classes
        # Leaves in depth-first order put every node's classes in one contiguous range [start, end), so a
        # node's mean of anything over its classes is a difference of two cumulative sums: node scores for
        # all nodes in O(K), a node vector in O(D). No BLAS either: right after an onnxruntime run its
        # spinning threads slow a multi-threaded BLAS call 30x on a small machine (measured: 20 ms, not 0.6)
        order, self.start, self.end = _leaf_ranges(hierarchy)
        V, self.c = class_vectors(head.weight, head.bias, vectors)
        self.V = np.ascontiguousarray(V, np.float64)  # (K, D): the class rows, raw or unit
        self.order = order
        self.C = np.concatenate([np.zeros((1, V.shape[1])), np.cumsum(self.V[order], axis=0)])  # (K + 1, D)
        self.count = (self.end - self.start).astype(np.float64)
        self.kids = np.asarray(hierarchy.children, np.int64)  # (K - 1, 2)
        paths = [[c for _, c in hierarchy.path_to(k)] for k in range(K)]
        depth = max(len(p) for p in paths)
        sentinel = 2 * K - 1  # log p = 0 there
        self.paths = np.full((K, depth), sentinel, np.int64)
        for k, p in enumerate(paths):
            self.paths[k, :len(p)] = p

    def vectors(self, nodes) -> np.ndarray:
        """r_n (len(nodes), D) float64: the mean class row under each node."""
        n = np.asarray(nodes, np.int64)
        return (self.C[self.end[n]] - self.C[self.start[n]]) / self.count[n][:, None]

    def decide(self, pooled: np.ndarray) -> Decision:
        """Node scores, soft leaf probabilities and the greedy leaf from the pooled features (D,)."""
        if pooled.shape[0] != self.V.shape[1]:
            raise LayerError(f"the pooled features have {pooled.shape[0]} values but the head expects {self.V.shape[1]}")
        z = np.einsum("kd,d->k", self.V, pooled) + self.c  # (K,) class scores
        cz = np.concatenate([[0.0], np.cumsum(z[self.order])])
        s = (cz[self.end] - cz[self.start]) / self.count  # (2K - 1,) node scores: the mean over their classes
        left, right = s[self.kids[:, 0]], s[self.kids[:, 1]]
        logp = np.zeros(len(s) + 1)
        logp[self.kids[:, 0]] = -np.logaddexp(0.0, right - left)  # log softmax over the two children
        logp[self.kids[:, 1]] = -np.logaddexp(0.0, left - right)
        leaf_probs = np.exp(logp[self.paths].sum(axis=1))
        h, n = self.h, self.h.root
        while not h.is_leaf(n):
            a, b = h.kids(n)
            n = a if s[a] >= s[b] else b
        return Decision(s, np.exp(logp[:-1]), leaf_probs, int(n))

    def explain_path(self, leaf: int, d: Decision, A: np.ndarray) -> tuple[list[dict], np.ndarray]:
        """The steps from the root to ``leaf`` and their maps (depth, h, w): CAM(r_chosen) - CAM(r_other)."""
        h, s = self.h, d.scores
        steps, weights = [], []
        for i, (node, chosen) in enumerate(h.path_to(leaf)):
            a, b = h.kids(node)
            other = b if chosen == a else a
            steps.append({
                "depth": i, "node": node, "name": h.names[node], "chosen": chosen, "other": other,
                "greedy": a if s[a] >= s[b] else b,
                "probability": float(d.p_node[chosen]),
                "margin": float(s[chosen] - s[other]),
                "candidates": [{"node": c, "name": h.names[c], "probability": float(d.p_node[c]),
                                "classes": int(len(h.leaves(c)))} for c in (a, b)],
            })
            weights.append((chosen, other))
        if not weights:
            return steps, np.zeros((0,) + A.shape[1:])
        chosen, other = zip(*weights)
        diff = self.vectors(chosen) - self.vectors(other)  # (depth, D): r_chosen - r_other
        low = np.einsum("nk,khw->nhw", diff, A)  # (depth, h, w)
        return steps, low


def _leaf_ranges(h: Hierarchy):
    """-> (classes in depth-first order (K,), start (2K - 1,), end (2K - 1,)): node n's classes are
    order[start[n]:end[n]]."""
    K = h.num_classes
    order, start, end = [], np.zeros(2 * K - 1, np.int64), np.zeros(2 * K - 1, np.int64)
    stack = [(h.root, False)]
    while stack:
        n, done = stack.pop()
        if done:
            end[n] = len(order)
            continue
        start[n] = len(order)
        if h.is_leaf(n):
            order.append(n)
            end[n] = len(order)
            continue
        a, b = h.kids(n)
        stack += [(n, True), (b, False), (a, False)]
    return np.asarray(order, np.int64), start, end


def head_of(model):
    """The model's linear head, or a one-line LayerError saying what was found instead."""
    facts = model_facts(model)
    if facts["head"] is None:
        why = facts["head_error"] or "the model has no linear head"
        marker = "walking back from the output found "
        found = marker + why.split(marker, 1)[1].split(". Use", 1)[0] if marker in why else why
        raise LayerError(f"NBDT needs a linear classifier on pooled features (Gemm or MatMul after a global "
                         f"average pooling); {found}")
    return facts["head"]


def _checked(h: Hierarchy, fp: str, where: str) -> Hierarchy:
    if h.fingerprint and h.fingerprint != fp:
        raise InputError(f"{where} was built for another head (fingerprint {h.fingerprint}, this model's is {fp}); "
                         "delete it or write a new one with `onnxai tree MODEL`")
    return h
