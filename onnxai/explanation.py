"""Explanation: what every method returns, and how it is saved (``.npz`` arrays + ``.json`` facts).

Arrays go to ``NAME.npz`` (loaded with ``allow_pickle=False``), everything else to ``NAME.json``;
nothing is ever pickled, so a saved explanation is safe to open from anyone.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .safe_io import check_destinations, file_base, open_atomic, read_user_text, write_text

_ARRAYS = ("map", "segments", "importance", "image", "raw_map", "stderr")


@dataclass
class Explanation:
    """One map for one target class of one input.

    map: (H, W) float32 at the model's input resolution (unless the method was asked not to
        upsample), positive = evidence for the target.
    target, label, score: the explained class, its name and its probability on the unperturbed input.
    method, params: the method's name and the parameters it ran with (JSON-able).
    segments: (H, W) int32 feature map (LIME, Kernel SHAP) or None.
    importance: (k,) float32 per-feature importance or None.
    image: (H, W, 3) uint8 picture the model saw (the crop), for drawing.
    raw_map: the map before upsampling, when it differs (grid LIME, CAMs).
    stderr: the standard error of each sampled number, shaped like ``importance`` (per feature) or,
        for methods without features (RISE), like ``map``; 0 for deterministic methods, NaN where no
        estimator is defined (LIME's tree surrogate). ``unsettled()`` marks the features whose sign
        the 95% interval does not settle.
    extras: method-specific numbers (surrogate R^2, intercept, chosen layer, ...).
    timings: seconds: total, forward, ...
    """

    map: np.ndarray
    target: int
    label: str
    score: float
    method: str
    params: dict = field(default_factory=dict)
    segments: np.ndarray | None = None
    importance: np.ndarray | None = None
    image: np.ndarray | None = None
    raw_map: np.ndarray | None = None
    extras: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    source: str | None = None
    stderr: np.ndarray | None = None

    def unsettled(self, z: float = 1.96) -> np.ndarray | None:
        """(H, W) bool: pixels whose value's 95% interval (z standard errors) contains 0. RISE maps
        are all positive, so there the interval is of the map minus its mean (above / below average).
        None without standard errors."""
        if self.stderr is None:
            return None
        se = np.asarray(self.stderr, np.float64)
        if self.importance is not None and self.segments is not None and se.shape == np.shape(self.importance):
            value = np.asarray(self.importance, np.float64)
            flag = np.abs(value) < z * se
            return flag[self.segments]
        if se.shape == np.shape(self.map):
            m = np.asarray(self.map, np.float64)
            return np.abs(m - m.mean()) < z * se
        return None

    @property
    def title(self) -> str:
        return f"{self.method} ({self.label})"

    def top_features(self, k: int = 5) -> np.ndarray:
        """Indices of the k most important features (largest importance first)."""
        if self.importance is None:
            raise InputError(f"{self.method} has no per-feature importance; top features need LIME or Kernel SHAP")
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 0:
            raise InputError(f"k is how many top features to give, a whole number >= 0; got {k!r}")
        order = np.argsort(-np.asarray(self.importance), kind="stable")
        return order[: int(k)]

    def summary(self) -> dict:
        m = np.asarray(self.map, np.float64)
        return {
            "method": self.method,
            "target": self.target,
            "label": self.label,
            "score": round(float(self.score), 6),
            "map_shape": list(m.shape),
            "map_min": float(np.nanmin(m)) if m.size else None,
            "map_max": float(np.nanmax(m)) if m.size else None,
            **{k: v for k, v in self.extras.items() if isinstance(v, (int, float, str, bool))},
            "seconds": round(float(self.timings.get("total", 0.0)), 4),
        }

    # ------------------------------------------------------------------ persistence
    @staticmethod
    def paths(path) -> tuple[Path, Path]:
        """The two files ``save(path)`` writes: ``path.npz`` and ``path.json`` (a name with dots keeps them)."""
        base = file_base(path, "out/chelsea_lime")
        if base.suffix in (".npz", ".json"):
            base = base.with_suffix("")
        return base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")

    def save(self, path, force: bool = True) -> tuple[Path, Path]:
        """Write ``path.npz`` and ``path.json`` (a suffix on ``path`` is dropped). Returns both paths.

        Overwrites existing files like ``numpy.save`` (``force=False`` refuses them); never writes
        through a symbolic link. The label is kept as it is (the JSON escapes any character).
        """
        npz, js = self.paths(path)
        check_destinations([npz, js], force)
        arrays = {k: np.asarray(getattr(self, k)) for k in _ARRAYS if getattr(self, k) is not None}
        meta = {
            "format": "onnxai.explanation/1",
            "target": int(self.target),
            "label": self.label,
            "score": float(self.score),
            "method": self.method,
            "params": _jsonable(self.params),
            "extras": _jsonable(self.extras),
            "timings": _jsonable(self.timings),
            "source": self.source,
            "arrays": sorted(arrays),
        }
        with open_atomic(npz, "wb", force) as f:
            np.savez_compressed(f, **arrays)
        write_text(js, json.dumps(meta, indent=2), force)
        return npz, js

    @classmethod
    def load(cls, path) -> "Explanation":
        npz, js = cls.paths(path)
        for p in (npz, js):
            if not p.exists():
                raise InputError(f"{p} not found; an explanation is saved as a .npz and a .json side by side")
        try:
            meta = json.loads(read_user_text(js, "explanation's JSON"))
        except json.JSONDecodeError as e:
            raise InputError(f"{js} is not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != "onnxai.explanation/1":
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise InputError(f"{js} is not an onnxai explanation (format {got!r})")
        missing = [k for k in ("target", "label", "score", "method") if k not in meta]
        if missing:
            raise InputError(f"{js} lacks {', '.join(missing)}; it is damaged: explain the picture again")
        try:  # never unpickles: a crafted file cannot run code
            with np.load(npz, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise InputError(f"cannot read {npz} as the explanation's arrays ({e}); it is damaged or not an "
                             "onnxai .npz: explain the picture again") from None
        if "map" not in arrays:
            raise InputError(f"{npz} holds no map (arrays: {sorted(arrays)}); it is not an onnxai explanation")
        return cls(
            map=arrays["map"],
            target=meta["target"],
            label=meta["label"],
            score=meta["score"],
            method=meta["method"],
            params=meta.get("params", {}),
            segments=arrays.get("segments"),
            importance=arrays.get("importance"),
            image=arrays.get("image"),
            raw_map=arrays.get("raw_map"),
            stderr=arrays.get("stderr"),
            extras=meta.get("extras", {}),
            timings=meta.get("timings", {}),
            source=meta.get("source"),
        )


def to_jsonable(v, max_array: int | None = 4096):
    """Plain JSON types for parameters and facts: numpy scalars and arrays become numbers and lists
    (arrays above ``max_array`` elements become a short description), anything else its repr."""
    if isinstance(v, dict):
        return {str(k): to_jsonable(x, max_array) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_jsonable(x, max_array) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist() if max_array is None or v.size <= max_array else f"<array {v.shape}>"
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    if v is None or isinstance(v, (int, float, str, bool)):
        return v
    return repr(v)


_jsonable = to_jsonable
