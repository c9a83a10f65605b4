"""Model-randomisation sanity check (Adebayo et al. 2018, "Sanity checks for saliency maps").

The weights of the model are re-initialised layer by layer from the output backwards (cascading:
step k has the k layers nearest the output randomised), directly in the ONNX initializers, and the
picture is explained again at each step. A map that reflects what the model learned must change as
its weights go: the Spearman rank correlation with the original map should fall towards 0. A map
that stays the same (an edge detector in disguise) fails the check.

Layers are the nodes that own float weight tensors (initializers with more than one value), in graph
order; a tensor shared by several nodes belongs to the first. BatchNormalization's running mean and
variance are left alone (a random variance can be negative). Each tensor is replaced by normal noise
with the standard deviation of the original, drawn from a generator seeded by (seed, layer index), so
a layer gets the same random values at every later step of the cascade.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import InputError
from .kernels._checks import check_number

_FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
_SKIP_INPUTS = {"BatchNormalization": {3, 4}}  # running mean, running variance


@dataclass(frozen=True)
class WeightLayer:
    """A node that owns weights: its name, op type and the initializers that belong to it."""

    node: str
    op_type: str
    tensors: tuple


def weight_layers(proto: onnx.ModelProto) -> list[WeightLayer]:
    """The layers with weights, in graph order (input side first)."""
    inits = {i.name: i for i in proto.graph.initializer}
    owned: set[str] = set()
    layers = []
    for k, node in enumerate(proto.graph.node):
        skip = _SKIP_INPUTS.get(node.op_type, set())
        names = []
        for j, name in enumerate(node.input):
            t = inits.get(name)
            if t is None or name in owned or j in skip or t.data_type not in _FLOAT:
                continue
            if int(np.prod(t.dims)) <= 1:  # scalars: clip bounds, epsilons, constant factors
                continue
            names.append(name)
        if names:
            owned.update(names)
            layers.append(WeightLayer(node.name or f"{node.op_type}_{k}", node.op_type, tuple(names)))
    return layers


def randomise(proto: onnx.ModelProto, count: int, seed: int = 0, layers: list[WeightLayer] | None = None) -> onnx.ModelProto:
    """A copy of ``proto`` with the ``count`` layers nearest the output re-initialised."""
    layers = weight_layers(proto) if layers is None else layers
    if not 0 <= count <= len(layers):
        raise InputError(f"the model has {len(layers)} layers with weights; cannot randomise {count}")
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    where = {t.name: i for i, t in enumerate(out.graph.initializer)}
    n = len(layers)
    for idx in range(n - count, n):
        for j, name in enumerate(layers[idx].tensors):
            t = out.graph.initializer[where[name]]
            orig = numpy_helper.to_array(t)
            rng = np.random.default_rng([int(seed), idx, j])
            std = float(np.std(orig.astype(np.float64)))
            new = (rng.standard_normal(orig.shape) * std).astype(orig.dtype)
            t.CopyFrom(numpy_helper.from_array(new, name))
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (average ranks for ties).

    Where a map is constant it carries no ranking: 1.0 if both maps are equal, else 0.0.
    """
    from scipy.stats import rankdata

    a = np.nan_to_num(np.asarray(a, np.float64)).ravel()
    b = np.nan_to_num(np.asarray(b, np.float64)).ravel()
    if a.shape != b.shape:
        raise InputError(f"maps of different sizes cannot be compared: {a.size} and {b.size} values")
    ra, rb = rankdata(a), rankdata(b)
    sa, sb = ra.std(), rb.std()
    if sa == 0 or sb == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.clip(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb), -1.0, 1.0))


def cascade_counts(n_layers: int, steps: int | list | None = None) -> list[int]:
    """How many layers are randomised at each step (always starting at 0, the original model).

    steps: None (every layer when there are at most 8, else 8 evenly spaced counts ending with
    all), an int (that many evenly spaced counts), or an explicit list of counts.
    """
    if n_layers < 1:
        raise InputError("the model has no layers with weights to randomise")
    if isinstance(steps, (list, tuple)):
        counts = sorted({int(c) for c in steps} | {0})
        if counts[-1] > n_layers or counts[0] < 0:
            raise InputError(f"layer counts must lie in 0..{n_layers}, got {list(steps)}")
        return counts
    k = 8 if steps is None else int(steps)
    if k < 1:
        raise InputError("steps must be at least 1")
    if n_layers <= k:
        return list(range(n_layers + 1))
    return [0] + sorted({int(round(v)) for v in np.linspace(n_layers / k, n_layers, k)})


@dataclass
class SanityStep:
    """One step of the cascade: how many layers are random, the deepest of them, the map, correlations."""

    randomised: int
    layer: str
    map: np.ndarray
    spearman: float
    spearman_abs: float
    seconds: float


@dataclass
class SanityResult:
    """The cascade of one method on one picture: the explained class, the weight layers, every step."""

    method: str
    target: int  # the class explained, fixed along the cascade (the original prediction)
    label: str
    layers: list  # WeightLayer objects in graph order; step k randomises the last k
    steps: list = field(default_factory=list)  # SanityStep objects, 0 random layers first
    image: np.ndarray | None = None  # (H, W, 3) uint8 crop the maps are drawn over

    def passed(self, threshold: float = 0.5) -> bool:
        """The check passes when the fully randomised map's |rank correlation| falls below ``threshold``."""
        threshold = check_number(threshold, "threshold", 0, 1)
        return bool(self.steps) and abs(self.steps[-1].spearman) < threshold

    TABLE_HEADER = f"{'random layers':>13}  {'down to':<32} {'spearman':>9} {'of |maps|':>11} {'s':>6}"

    @staticmethod
    def table_row(s: "SanityStep") -> str:
        return f"{s.randomised:>13}  {s.layer[:32]:<32} {s.spearman:9.3f} {s.spearman_abs:11.3f} {s.seconds:6.2f}"

    def table(self) -> str:
        return "\n".join([self.TABLE_HEADER] + [self.table_row(s) for s in self.steps])

    def to_json(self) -> dict:
        return {"format": "onnxai.sanity/1", "method": self.method, "target": self.target, "label": self.label,
                "layers": len(self.layers), "passed": self.passed(),
                "steps": [{"randomised": s.randomised, "layer": s.layer, "spearman": s.spearman,
                           "spearman_abs": s.spearman_abs, "seconds": s.seconds} for s in self.steps]}

    def montage(self, columns: int | None = None):
        """The map at every step over the picture, titled with the correlation (a PIL image)."""
        from . import render

        if self.image is None:
            raise InputError("no picture to draw on")
        panels = [render.overlay(self.image, s.map, colorbar=False) for s in self.steps]
        # the correlation first: a long layer name is what gets cut when the title is too wide
        titles = [f"rho={s.spearman:+.2f} " + ("original" if s.randomised == 0 else f"{s.randomised} random (to {s.layer})")
                  for s in self.steps]
        return render.montage(panels, titles, columns=columns or min(len(panels), 5))


def _reload(model, proto):
    from .model import Model

    threads = model._so.intra_op_num_threads or None
    return Model(proto, providers=model._providers, batch_size=model.batch_size, output=model.output,
                 preprocess=model.preprocess, labels=model.labels, threads=threads)


def cascading_randomisation(model, image, method, target="top1", steps=None, seed: int = 0,
                            on_step=None) -> SanityResult:
    """Explain ``image`` on ever more randomised copies of ``model``; see the module's notes.

    method: a Method object (anything with ``explain(model, image, target)``) or a registry name.
    target: the class explained; it stays fixed (the original prediction) along the cascade.
    on_step: called with each SanityStep as it is ready.
    """
    from .methods import make_method

    if isinstance(method, str):
        method = make_method(method)
    layers = weight_layers(model.proto)
    counts = cascade_counts(len(layers), steps)
    t0 = time.perf_counter()
    first = method.explain(model, image, target=target)
    first = first[0] if isinstance(first, list) else first
    original = np.asarray(first.map, np.float32)
    result = SanityResult(getattr(method, "name", type(method).__name__), int(first.target), first.label, layers,
                          image=first.image)
    for c in counts:
        ts = time.perf_counter()
        if c == 0:
            map_ = original
            secs = ts - t0
        else:
            m = _reload(model, randomise(model.proto, c, seed, layers))
            e = method.explain(m, image, target=first.target)
            map_ = np.asarray((e[0] if isinstance(e, list) else e).map, np.float32)
            secs = time.perf_counter() - ts
        if map_.shape != original.shape:
            raise InputError(f"the map changed shape along the cascade ({original.shape} -> {map_.shape})")
        step = SanityStep(c, layers[len(layers) - c].node if c else "-", map_, spearman(original, map_),
                          spearman(np.abs(original), np.abs(map_)), secs)
        result.steps.append(step)
        if on_step is not None:
            on_step(step)
    return result
