"""Classes: the class axis of a classifier's scores.

- ``convert``: raw outputs -> probabilities (softmax unless the model applies one) or logits (the
  log-odds ``log_odds`` of a model that outputs only probabilities);
- ``check_finite``: scores with NaN or infinities are an error that says what to check;
- ``read_labels``, ``class_index``, ``top_k``/``Prediction``: class names from a file, a class given
  by index or (case-insensitive) name, the top classes of one row.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, OutputError
from .safe_io import read_user_text


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float32)
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    return e / e.sum(axis=1, keepdims=True)


LOG_FLOOR = 1e-30  # probabilities are clipped here before a log: a class the model rounds to 0 stays finite


def log_odds(p: np.ndarray) -> np.ndarray:
    """(n, K) probabilities -> each class's log-odds against the rest, log p_c - log sum_{j != c} p_j: the
    logit of a probability output (for a binary classifier's class 1, its decision function; shap's
    link="logit"). The rest is summed without the class rather than taken as 1 - p_c, so a saturated
    p_c, which float32 rounds to 1, keeps the margin its rivals' small probabilities hold."""
    p = np.clip(np.asarray(p, np.float64), 0.0, None)
    rest = p.sum(axis=1, keepdims=True) - p  # no cancellation for p_c <= 1/2, so only the top is redone
    rows, top = np.arange(p.shape[0]), p.argmax(axis=1)
    others = p.copy()
    others[rows, top] = 0.0
    rest[rows, top] = others.sum(axis=1)
    return (np.log(np.clip(p, LOG_FLOOR, None)) - np.log(np.clip(rest, LOG_FLOOR, None))).astype(np.float32)


def binary_columns(r: np.ndarray, reading: str) -> np.ndarray:
    """A binary classifier's one score column (n, 1) as two classes (n, 2): a logit z becomes (-z/2, z/2),
    whose softmax is (1 - sigmoid z, sigmoid z) and whose difference is z; a probability p becomes
    (1 - p, p). Class 1 is the column's own class, class 0 its complement."""
    r = np.asarray(r, np.float32).reshape(-1, 1)
    return np.concatenate([-r / 2, r / 2] if reading == "logit" else [1 - r, r], axis=1)


def convert(raw: np.ndarray, kind: str, outputs_probabilities: bool) -> np.ndarray:
    """Turn raw class-score outputs into the asked kind: "probabilities", "logits" or "raw" (see
    ``Model.scores``); ``outputs_probabilities``: the model already applies a softmax."""
    raw = np.asarray(raw, np.float32)
    if kind == "raw":
        return raw
    if kind == "probabilities":
        return raw if outputs_probabilities else softmax(raw)
    if kind == "logits":  # a model that outputs only probabilities: their log-odds
        return log_odds(raw) if outputs_probabilities and raw.shape[1] > 1 else raw
    raise InputError(f"kind must be 'probabilities', 'logits' or 'raw', not {kind!r}")


def check_finite(s: np.ndarray) -> np.ndarray:
    """(n, classes) scores as float32; an OutputError when any is NaN or infinite."""
    if not np.all(np.isfinite(s)):
        bad = int((~np.isfinite(s)).any(axis=1).sum())
        raise OutputError(
            f"the model produced NaN or infinite scores for {bad} of {s.shape[0]} inputs; check the "
            "preprocessing (--mean, --std, --scale) and that the model file is not damaged"
        )
    return s.astype(np.float32, copy=False)


def read_user_file(path, what: str, json_start: str | tuple):
    """(text, parsed JSON or None) of a small file the user names: JSON when it starts with
    ``json_start`` ("[", "{" or a tuple of them), else plain text; a clear error when it is missing or bad JSON."""
    path = Path(path)
    text = read_user_text(path, what)
    if not text.lstrip().startswith(json_start):
        return text, None
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path} looks like JSON but does not parse ({e})") from None


def read_labels(path) -> list[str]:
    """Labels from a text file (one per line), a JSON list, or a JSON object {"0": name, ...} (a
    transformers config's id2label)."""
    text, parsed = read_user_file(path, "labels file", ("[", "{"))
    if parsed is not None:
        return labels_from_json(parsed, str(path))
    return [line.strip() for line in text.splitlines() if line.strip()]


def labels_from_json(parsed, where: str) -> list[str]:
    """Class names from parsed JSON: a list of names, or an object keyed by the class indices 0..K-1."""
    if isinstance(parsed, dict):
        try:
            index = {int(k): v for k, v in parsed.items()}
        except (TypeError, ValueError):
            index = {}
        if sorted(index) != list(range(len(parsed))) or not parsed:
            raise InputError(f"{where}: a labels object needs the class indices 0..K-1 as its keys, got "
                             f"{list(parsed)[:5]}")
        parsed = [index[k] for k in range(len(index))]
    if not isinstance(parsed, list) or not all(isinstance(v, (str, int, float)) for v in parsed):
        raise InputError(f"{where}: labels are a list of names (or an object of them by class index)")
    return [str(v) for v in parsed]


def class_index(target, labels, num_classes: int) -> int:
    """A class given as an index, an index string, or a (case-insensitive) label."""
    if isinstance(target, (bool, np.bool_)):  # True is an int to Python, but never a class
        raise InputError(f"a class is an index or a label, not {target!r}; give e.g. 0, 'top1' or a label")
    if isinstance(target, (int, np.integer)):
        idx = int(target)
    elif isinstance(target, str) and target.strip().lstrip("-").isdigit():
        idx = int(target)
    elif isinstance(target, str):
        if labels is None:
            raise InputError(f"class {target!r} given by name but the model has no labels; give an index or --labels FILE")
        low = [str(l).lower() for l in labels]
        t = target.strip().lower()
        if t in low:
            return low.index(t)
        close = difflib.get_close_matches(t, low, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InputError(f"unknown class {target!r}{hint}")
    else:
        raise InputError(f"a class is an index or a label, not {type(target).__name__}")
    if not 0 <= idx < num_classes:
        raise InputError(f"class index {idx} is out of range: the model has {num_classes} classes (0..{num_classes - 1})")
    return idx


def top_k(probs: np.ndarray, k: int, label) -> list[Prediction]:
    """The k most probable classes of one (classes,) row, best first (ties: the lower index); label(i) names i."""
    k = max(1, min(int(k), probs.shape[0]))
    idx = np.argsort(-probs, kind="stable")[:k]
    return [Prediction(int(i), label(int(i)), float(probs[i])) for i in idx]
