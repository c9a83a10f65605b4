"""The induced hierarchy of a neural-backed decision tree (NBDT; Wan et al., ICLR 2021, "NBDT:
Neural-Backed Decision Trees", section 3.2 and figure 2), built from a linear head's class vectors:
its structure, node vectors, readable names and JSON form. Pure numpy + scikit-learn.

Structure (paper figure 2, steps A-B; the ``nbdt`` package's ``graph.build_induced_graph``): the
leaves are the rows w_k of the head's weight W (K classes x D features); agglomerative clustering
(scikit-learn, Ward linkage on Euclidean distances: the package's defaults) merges two clusters at a
time into a binary tree. The paper clusters the normalised rows w_k / |w_k| (``normalise=True``, the
default); the package's code clusters the raw rows (``normalise=False``). Node ids are
scikit-learn's: leaves 0..K-1, merge i is node K + i, the root is 2K - 2.

Node vectors (paper figure 2, steps C-D: "for each ancestor, average all leaf node weights in its
subtree"; the package's ``HardTreeSupLoss.get_output_sub`` takes the mean of the network's outputs
over the classes under each child, the same mean taken after the head): for node n with leaves L(n),

    vectors="logits"      r_n = mean_{k in L(n)} w_k,        b_n = mean_{k in L(n)} b_k
                          so <x, r_n> + b_n is the mean of the logits of the classes under n
                          (the package's inference; a node with one class scores its logit)
    vectors="normalised"  r_n = mean_{k in L(n)} w_k / |w_k|, b_n = 0   (the paper's figure)

Names: without WordNet, an inner node is named after its most typical classes, those whose
normalised vectors are closest (cosine) to the node's mean vector: "tabby / tiger cat / ... (12)".
A names file (JSON object or "KEY<TAB or colon>name" lines) renames nodes; a key is a node id or
class labels joined by "|" (the smallest node holding all of them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import read_user_file
from ..errors import InputError
from ..safe_io import read_user_text, write_text

FORMAT = "onnxai.nbdt-hierarchy/1"
METADATA_KEY = "onnxai.nbdt_hierarchy"  # a model's cached hierarchy (``onnxai tree MODEL --embed``)
LINKAGES = ("ward", "average", "complete", "single")
VECTORS = ("logits", "normalised")
SHOWN = 3  # class labels in a generated node name


def fingerprint(weight: np.ndarray) -> str:
    """A short hash of the head's weight: a cached hierarchy belongs to the head it was built on."""
    w = np.ascontiguousarray(np.asarray(weight, np.float32))
    return hashlib.sha1(str(w.shape).encode() + w.tobytes()).hexdigest()[:16]


def unit_rows(weight: np.ndarray) -> np.ndarray:
    w = np.asarray(weight, np.float64)
    return w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)


@dataclass
class Hierarchy:
    """A binary tree over K classes. children: (K-1, 2) int64, the children of inner node K + i;
    labels: K class names; names: 2K - 1 node names (a leaf's is its label)."""

    children: np.ndarray
    labels: list
    names: list
    linkage: str = "ward"
    normalise: bool = True
    fingerprint: str = ""
    _leaves: list | None = field(default=None, repr=False, compare=False)
    _parents: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.children) + 1

    @property
    def root(self) -> int:
        return 2 * self.num_classes - 2

    def is_leaf(self, node: int) -> bool:
        return node < self.num_classes

    def kids(self, node: int) -> tuple[int, int]:
        a, b = self.children[node - self.num_classes]
        return int(a), int(b)

    def leaves(self, node: int) -> np.ndarray:
        """The classes under ``node`` (sorted)."""
        if self._leaves is None:
            K = self.num_classes
            out = [np.array([k]) for k in range(K)]
            for a, b in self.children:  # a merge's children always come before it
                out.append(np.sort(np.concatenate([out[a], out[b]])))
            self._leaves = out
        return self._leaves[node]

    def parents(self) -> np.ndarray:
        """(2K - 1,) the parent of every node; -1 for the root."""
        if self._parents is None:
            par = np.full(2 * self.num_classes - 1, -1, np.int64)
            kids = np.asarray(self.children, np.int64)
            par[kids[:, 0]] = par[kids[:, 1]] = np.arange(self.num_classes, 2 * self.num_classes - 1)
            self._parents = par
        return self._parents

    def path_to(self, leaf: int) -> list[tuple[int, int]]:
        """[(node, child taken)] from the root down to ``leaf``."""
        par = self.parents()
        steps, n = [], int(leaf)
        while par[n] >= 0:
            steps.append((int(par[n]), n))
            n = int(par[n])
        return steps[::-1]

    def depths(self) -> np.ndarray:
        """(K,) the number of decisions from the root to each class."""
        par = self.parents()
        depth = np.zeros(2 * self.num_classes - 1, np.int64)
        for n in range(self.root - 1, -1, -1):  # parents have larger ids: top-down in reverse id order
            depth[n] = depth[par[n]] + 1
        return depth[: self.num_classes]

    def membership(self):
        """(2K - 1, K) scipy.sparse CSR: row n averages the classes under node n."""
        from scipy.sparse import csr_matrix

        K = self.num_classes
        rows = [self.leaves(n) for n in range(2 * K - 1)]
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        data = np.concatenate([np.full(len(r), 1.0 / len(r)) for r in rows])
        return csr_matrix((data, np.concatenate(rows), indptr), shape=(2 * K - 1, K))

    def node_vectors(self, weight: np.ndarray, bias: np.ndarray, vectors: str = "logits"):
        """-> (R (2K - 1, D), b (2K - 1,)) float64 by the rule ``vectors`` (see the module docstring)."""
        V, c = class_vectors(weight, bias, vectors)
        M = self.membership()
        return np.asarray(M @ V), M @ c

    def lowest_common_ancestor(self, classes) -> int:
        par = self.parents()
        chains = []
        for c in classes:
            chain, n = [], int(c)
            while n >= 0:
                chain.append(n)
                n = int(par[n])
            chains.append(chain)
        common = set(chains[0]).intersection(*chains[1:])
        return min(common, key=lambda n: len(self.leaves(n)))

    # ------------------------------------------------------------------ names
    def rename(self, mapping: dict) -> None:
        """mapping: {node id or "label|label|...": name}."""
        index = {str(l): i for i, l in enumerate(self.labels)}
        for key, name in mapping.items():
            k = str(key).strip()
            if k.isdigit():
                node = int(k)
                if not 0 <= node <= self.root:
                    raise InputError(f"names: node {node} does not exist (nodes are 0..{self.root})")
            else:
                parts = [p.strip() for p in k.split("|") if p.strip()]
                missing = [p for p in parts if p not in index]
                if not parts or missing:
                    raise InputError(f"names: {missing or k!r} is not a class label; a key is a node id or labels "
                                     "joined by '|'")
                node = self.lowest_common_ancestor([index[p] for p in parts])
            self.names[node] = str(name)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        K = self.num_classes
        depth = self.depths()
        return {
            "format": FORMAT,
            "classes": K,
            "linkage": self.linkage,
            "normalise": self.normalise,
            "fingerprint": self.fingerprint,
            "root": self.root,
            "labels": list(map(str, self.labels)),
            "max_depth": int(depth.max()) if K > 1 else 0,
            "mean_depth": float(depth.mean()),
            "nodes": [{"id": K + i, "children": [int(a), int(b)], "name": self.names[K + i],
                       "classes": int(len(self.leaves(K + i)))} for i, (a, b) in enumerate(self.children)],
        }

    def save(self, path, force: bool = True) -> Path:
        """Write the JSON through safe_io (a unique temporary, then a rename; never through a link)."""
        return write_text(path, json.dumps(self.to_dict(), indent=1), force)

    @classmethod
    def from_dict(cls, d: dict, where: str = "the hierarchy") -> "Hierarchy":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError(f"{where} is not an onnxai NBDT hierarchy (format {FORMAT!r}); write one with "
                             "`onnxai tree MODEL`")
        try:  # a file or a model's metadata: neither is trusted to be whole
            K = int(d["classes"])
            nodes = sorted(d["nodes"], key=lambda n: n["id"])
            if K < 2 or [n["id"] for n in nodes] != list(range(K, 2 * K - 1)):
                raise InputError(f"{where}: the inner nodes must be numbered {K}..{2 * K - 2}")
            children = np.array([n["children"] for n in nodes], np.int64).reshape(K - 1, 2)
            labels = [str(v) for v in d["labels"]]
            names = labels + [str(n["name"]) for n in nodes]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"{where} is a damaged NBDT hierarchy ({type(e).__name__}: {e}); write it again "
                             "with `onnxai tree MODEL`") from None
        # every node but the root is the child of exactly one later node: a tree, walked without cycles
        below = children < np.arange(K, 2 * K - 1)[:, None]
        if len(labels) != K or not below.all() or np.sort(children.ravel()).tolist() != list(range(2 * K - 2)):
            raise InputError(f"{where}: the nodes do not form a tree over its {K} classes (each node's children "
                             "must be earlier nodes, every node but the root used once, one label per class)")
        return cls(children, labels, names, str(d.get("linkage", "ward")), bool(d.get("normalise", True)),
                   str(d.get("fingerprint", "")))

    @classmethod
    def load(cls, path) -> "Hierarchy":
        path = Path(path)
        try:
            d = json.loads(read_user_text(path, "hierarchy file"))
        except json.JSONDecodeError as e:
            raise InputError(f"{path} is not valid JSON ({e})") from None
        return cls.from_dict(d, str(path))


def class_vectors(weight: np.ndarray, bias: np.ndarray, vectors: str = "logits"):
    """The rows that node vectors average: (the head's rows and biases) or (unit rows, zeros), float64."""
    if vectors not in VECTORS:
        raise InputError(f"vectors must be one of {VECTORS}, not {vectors!r}")
    if vectors == "logits":
        return np.asarray(weight, np.float64), np.asarray(bias, np.float64).reshape(-1)
    return unit_rows(weight), np.zeros(len(weight))


def induce(weight: np.ndarray, labels=None, linkage: str = "ward", normalise: bool = True) -> Hierarchy:
    """The induced hierarchy of a head with class vectors ``weight`` (K, D), named after typical classes."""
    from sklearn.cluster import AgglomerativeClustering

    if linkage not in LINKAGES:
        raise InputError(f"linkage must be one of {LINKAGES}, not {linkage!r}")
    W = np.asarray(weight, np.float64)
    K = W.shape[0]
    if K < 2:
        raise InputError(f"a decision tree needs at least 2 classes; the head has {K}")
    X = unit_rows(W) if normalise else W
    children = AgglomerativeClustering(n_clusters=1, linkage=linkage, compute_full_tree=True).fit(X).children_
    labels = [str(l) for l in labels] if labels is not None else [f"class {k}" for k in range(K)]
    h = Hierarchy(np.asarray(children, np.int64), labels, list(labels), linkage, bool(normalise), fingerprint(W))
    h.names = typical_names(h, W)
    return h


def _short(label: str) -> str:
    return label.split(",")[0].strip() or label


def typical_names(h: Hierarchy, weight: np.ndarray, shown: int = SHOWN) -> list[str]:
    """Leaves keep their labels; an inner node lists its ``shown`` most typical classes (highest cosine
    with the node's mean normalised vector) and, when it has more, "... (N)"."""
    U = unit_rows(weight)
    names = list(h.labels)
    for n in range(h.num_classes, h.root + 1):
        idx = h.leaves(n)
        centre = U[idx].mean(axis=0)
        order = idx[np.argsort(-(U[idx] @ centre), kind="stable")]
        parts = [_short(h.labels[k]) for k in order[:shown]]
        names.append(" / ".join(parts) + (f" / ... ({len(idx)})" if len(idx) > shown else ""))
    return names


def read_names(path) -> dict:
    """A names file: a JSON object {key: name}, or lines "key<TAB>name" / "key: name" (# comments)."""
    text, parsed = read_user_file(path, "names file", "{")
    if parsed is not None:
        return {str(k): str(v) for k, v in parsed.items()}
    out = {}
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, name = line.partition("\t") if "\t" in line else line.rpartition(":")
        if not sep or not key.strip() or not name.strip():
            raise InputError(f"{path}:{i}: a names line is 'KEY<TAB>name' or 'KEY: name', got {line!r}")
        out[key.strip()] = name.strip()
    return out
