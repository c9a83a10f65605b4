"""What a metric is, the registry of metrics, and the small pieces every metric shares.

A ``Column`` is a number a ``Score`` carries and the tables print: its name (the CSV/JSON field), which
direction is better, a one-line description, its headings and digits. A ``Metric`` is a column with one
scoring function, ``score(sample) -> float``; ``@register`` puts one instance in ``REGISTRY`` (name ->
metric, in registration order), and every table, CSV, JSON and report reads its columns from there,
so a new metric is one class:

    @register
    class Sparsity(Metric):
        name, direction, heading = "sparsity", "higher", "sparsity"
        description = "sparsity: Gini index of the map's absolute values"
        def score(self, sample):
            return gini(np.abs(sample.map))

A ``Sample`` is one map of one picture being scored: the model, the prepared picture, the map, the
class and the scoring options, plus the measurements that several metrics share (a deletion curve,
the one engine run behind AD/IC/AD50/IC50), each run once whichever metric asks first.

Also here: the picture as the model sees it (``Prepared``, ``prepare``), areas under curves, pixel
ranks, min-max scaling, the random baseline map and the map fitted to the model's input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..kernels.resize import resize_map
from ..methods.base import resolve_targets

DIRECTIONS = ("lower", "higher")

# pixels: insertion reveals the map over the picture blurred this much. The methods' "blur" fill
# (methods.fills.BLUR_SIGMA = 10) has to hide a region; this blur only has to erase its detail.
INSERTION_BLUR_SIGMA = 5.0


# --------------------------------------------------------------------------- columns and metrics


class Column:
    """A number of a Score that tables show. Subclasses set the class attributes."""

    name: str = ""  # the CSV / JSON field and the key of REGISTRY
    direction: str = "lower"  # which way is better: "lower" | "higher"
    description: str = ""  # one line for tables and reports
    heading: str = ""  # short heading: "deletion AUC", "AD" (the arrow is added)
    report_heading: str | None = None  # the report's summary heading when it differs ("AD %")
    digits: int = 3  # decimals in the report
    text_digits: int | None = None  # decimals in the text table when they differ

    @property
    def arrow(self) -> str:
        return "↓" if self.direction == "lower" else "↑"

    @property
    def text_heading(self) -> str:
        """The heading of the text table and of the report's per-picture table."""
        return f"{self.heading or self.name} {self.arrow}"

    @property
    def summary_heading(self) -> str:
        """The heading of the report's evaluation summary."""
        return f"{self.report_heading or self.heading or self.name} {self.arrow}"

    @property
    def table_digits(self) -> int:
        return self.digits if self.text_digits is None else self.text_digits

    def value(self, score) -> float:
        """This column's number in a Score."""
        return score.values[self.name]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.direction} is better)>"


class Metric(Column):
    """A faithfulness metric: a column with one scoring function."""

    def score(self, sample: "Sample") -> float:
        """The metric of one map of one picture."""
        raise NotImplementedError


REGISTRY: dict[str, Metric] = {}


def register(cls):
    """Class decorator: put one instance of the Metric subclass ``cls`` in REGISTRY under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise InputError(f"register takes a Metric subclass, not {cls!r}")
    if not cls.name or cls.name in REGISTRY:
        raise InputError(f"a metric needs a new name; {cls.name!r} is empty or taken ({', '.join(REGISTRY)})")
    if cls.direction not in DIRECTIONS:
        raise InputError(f"{cls.name}: direction must be 'lower' or 'higher', not {cls.direction!r}")
    REGISTRY[cls.name] = cls()
    return cls


# --------------------------------------------------------------------------- the picture and the map


@dataclass
class Prepared:
    """A picture as the model sees it: x (1, ...) model input, crop (H, W, 3) uint8, probs (classes,)."""

    x: np.ndarray
    crop: np.ndarray
    probs: np.ndarray

    @classmethod
    def from_crop(cls, model, crop: np.ndarray) -> "Prepared":
        """From a picture that already is the model's crop (e.g. ``Explanation.image``): no resizing."""
        x, crop = model.prepare(np.asarray(crop, np.uint8), cropped=True)
        return cls(x, crop, model.run_batch(x)[0])


def prepare(model, image) -> Prepared:
    """A path or RGB picture through the model's preprocessing (a Prepared passes through)."""
    if isinstance(image, Prepared):
        return image
    x, crop = model.prepare(image)
    return Prepared(x, crop, model.run_batch(x)[0])


def _prepared(model, image):
    p = prepare(model, image)
    return p.x, p.crop, p.probs


def _target(model, probs, target) -> int:
    idx, _ = resolve_targets(model, probs, "top1" if target is None else target)
    return int(idx[0])


@dataclass
class Sample:
    """One map of one picture being scored, and the measurements its metrics share."""

    model: object
    picture: Prepared
    map: np.ndarray  # (h, w) as the method returned it (metrics fit it to the crop)
    target: int
    step: int | None = None  # pixels per deletion / insertion step (None: one row)
    substrate: object = "zero"  # what deleted pixels show
    blur_sigma: float = INSERTION_BLUR_SIGMA  # the blur insertion starts from
    progress: bool | None = False
    measured: dict = field(default_factory=dict)

    def measure(self, key: str, compute):
        """``compute()`` the first time ``key`` is asked for, the same result afterwards."""
        if key not in self.measured:
            self.measured[key] = compute()
        return self.measured[key]


# --------------------------------------------------------------------------- small pieces


def auc(scores, fractions=None) -> float:
    """Area under a curve by the trapezoid rule; ``fractions`` default to evenly spaced on [0, 1]."""
    y = np.asarray(scores, np.float64)
    if y.size < 2:
        raise InputError("a curve needs at least two points")
    x = np.linspace(0.0, 1.0, y.size) if fractions is None else np.asarray(fractions, np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def pixel_ranks(map_: np.ndarray) -> np.ndarray:
    """(H, W) int32: 0 for the pixel with the largest map value, 1 for the next, ... (ties: raster order)."""
    m = np.nan_to_num(np.asarray(map_, np.float64), nan=-np.inf)
    order = np.argsort(-m.ravel(), kind="stable")
    ranks = np.empty(order.size, np.int32)
    ranks[order] = np.arange(order.size, dtype=np.int32)
    return ranks.reshape(m.shape)


def minmax(map_: np.ndarray) -> np.ndarray:
    """The map scaled to [0, 1] (a constant map becomes all ones: it keeps the whole picture)."""
    m = np.nan_to_num(np.asarray(map_, np.float64))
    lo, hi = float(m.min()), float(m.max())
    if hi - lo <= 0:
        return np.ones(m.shape, np.float32)
    return ((m - lo) / (hi - lo)).astype(np.float32)


def random_map(shape, seed: int = 0, cells: int | None = 7) -> np.ndarray:
    """A random map, the baseline every table carries: same seed, same map.

    cells: uniform random values on a cells x cells grid, upsampled bilinearly (plus a little pixel
    noise to break ties), so the baseline has blobs like real maps do; None gives independent
    pixels, which deletion punishes unfairly hard (scattered black pixels break a CNN quickly).
    """
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in shape)
    if cells is None:
        return rng.random((h, w)).astype(np.float32)
    grid = rng.random((int(cells), int(cells))).astype(np.float32)
    return resize_map(grid, h, w) + 1e-3 * rng.random((h, w)).astype(np.float32)


def fit_map(map_: np.ndarray, h: int, w: int) -> np.ndarray:
    """The map at the model's input resolution (``resize_map``, NaN as 0, when a method returned a coarser map)."""
    m = np.asarray(map_, np.float32)
    if m.ndim != 2:
        raise InputError(f"a map is 2-D (H, W); got shape {m.shape}")
    if m.shape == (h, w):
        return m
    return resize_map(np.nan_to_num(m), h, w)
