"""The shape every method shares: one ``explain`` entry point, target choice, and the perturbation
base class that owns the engine.

    Method               explain(model, image, target): prepare the input, one first forward pass,
                         resolve the targets, then ``_explain``; one Explanation per target
    PerturbationMethod   a black-box method supplies only ``setup`` (its features, mask source and
                         baseline) and ``aggregate`` (scores -> one map per target); the base class
                         owns the engine settings (score, progress, chunk_size, memory_budget), scores
                         the perturbations AND the two end points (the input and the baseline) in one
                         engine run, and assembles the Explanations
    deprecated_alias     the old spelling of a renamed parameter, accepted with a warning

score="auto" (the default of occlusion, RISE, LIME and Kernel SHAP): the class probabilities, or the
logits when a target's probability on the input is above 0.99 (``resolve_score``): a saturated softmax
hardly moves when parts of the picture are hidden, so differences, means and regressions of it are
flat or noise. The choice and why are in ``extras["score"]`` / ``extras["score_note"]``.

Fills (what hidden pixels show) are in ``methods.fills``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import engine
from ..errors import InputError
from ..explanation import Explanation
from .budget import (AUTO_ERROR_FLOOR, AUTO_FIRST, AUTO_MAX_SAMPLES, AUTO_RANK_TOLERANCE, AUTO_STEP,  # noqa: F401
                     AUTO_TOLERANCE, QUARTER_GROUPS, below_floor, check_budget, check_count, check_number, check_seed,
                     converged, predicted_agreement, predicted_disagreement, rank_correlation, rank_exponent, split_agreements)

SCORES = ("probabilities", "logits")


def resolve_targets(model, probs: np.ndarray, target) -> tuple[list[int], bool]:
    """-> (class indices, whether a single Explanation is wanted).

    target: None or "top1" (the predicted class), "topK" (the K best), an index, a label, or a list.
    """
    if target is None:
        target = "top1"
    if isinstance(target, str) and target.lower().startswith("top") and target[3:].isdigit():
        k = int(target[3:])
        if k < 1:
            raise InputError("topK needs K >= 1")
        if k == 1:  # the first of equal maxima, as the stable sort below would give
            return [int(np.argmax(probs))], True
        order = np.argsort(-probs, kind="stable")[:k]
        return [int(i) for i in order], False
    if isinstance(target, str) and "," in target:
        target = [t.strip() for t in target.split(",") if t.strip()]
    if isinstance(target, (list, tuple)):
        idx = []
        for t in target:
            idx.extend(resolve_targets(model, probs, t)[0])
        if not idx:
            raise InputError("the list of target classes is empty; give an index, a label, 'topK' or a non-empty list")
        return list(dict.fromkeys(idx)), False
    return [model.class_index(target)], True


def deprecated_alias(cls_name: str, old: str, new: str, old_value, new_value, default):
    """The value of ``new`` when a caller still passes the old name ``old`` (a DeprecationWarning)."""
    if old_value is None:
        return new_value
    if not _same(new_value, default) and not _same(new_value, old_value):
        raise InputError(f"{cls_name}: give {new}= only ({old}= is its old name); got both")
    warnings.warn(f"{cls_name}({old}=...) is deprecated; use {new}=", DeprecationWarning, stacklevel=3)
    return old_value


def _same(a, b) -> bool:
    """a == b for values that may be arrays (whose == is elementwise)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


SATURATED = 0.99  # a target probability above this on the input: score="auto" explains the logits


def check_score(score, allow_raw: bool = False, allow_auto: bool = False) -> str:
    allowed = SCORES + (("raw",) if allow_raw else ()) + (("auto",) if allow_auto else ())
    if score not in allowed:
        raise InputError(f"score must be one of {', '.join(map(repr, allowed))}, not {score!r}")
    return score


class Method:
    """A method has one entry point: ``explain(model, image, target)``.

    It returns one Explanation for a single target (an index, a label, "top1") and a list for
    several ("top3", a list). All targets come from the same forward passes.
    """

    name = "method"
    inputs = "pictures"  # what it explains: "pictures", "tables" or "both"

    def params(self) -> dict:
        """The constructor's parameters as saved with the result (arrays named, not stored)."""
        p = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        for k, v in p.items():
            if isinstance(v, np.ndarray):
                p[k] = "array"
        return p

    def explain(self, model, image, target=None, cropped: bool = False):
        """cropped: ``image`` already is the model's input picture (see ``Model.prepare``)."""
        t0 = time.perf_counter()
        model.require_image()
        x, crop = model.prepare(image, cropped=cropped)
        source = str(image) if isinstance(image, str) or hasattr(image, "__fspath__") else None
        return self.explain_prepared(model, x, crop, target, source, t0)

    def explain_prepared(self, model, x, crop, target=None, source: str | None = None, t0: float | None = None):
        """``explain`` for a picture already through ``Model.prepare`` (x: the model input, crop: the
        picture it shows), so a caller running several methods decodes and resizes it once."""
        t0 = time.perf_counter() if t0 is None else t0
        probs, extra = self._first_pass(model, x)
        targets, single = self.resolve(model, probs, extra, target)
        results = self._explain(model, x, crop, probs, targets, **extra)
        self.finish(results, crop, source, time.perf_counter() - t0)
        for e in results:  # where the input's preprocessing came from (metadata, given, a guess): kept in the JSON
            e.extras.setdefault("preprocess", getattr(model, "preprocess_source", None))
        return results[0] if single else results

    def resolve(self, model, probs: np.ndarray, extra: dict, target) -> tuple[list[int], bool]:
        """The classes to explain from the first pass (see ``resolve_targets``); a method whose own
        prediction differs from the network's (NBDT) ranks "top1" / "topK" its way."""
        return resolve_targets(model, probs, target)

    @staticmethod
    def finish(results, crop: np.ndarray, source: str | None, total: float) -> None:
        """What every result gets after ``_explain``: the picture, where it came from, the total time,
        and a zero standard error for deterministic methods (sampled methods set their own)."""
        for e in results:
            if e.stderr is None:  # deterministic: exact given the input
                e.stderr = np.zeros_like(e.importance if e.importance is not None else e.map, dtype=np.float32)
            e.timings["total"] = total
            e.image = crop
            if source is not None:
                e.source = source

    def _first_pass(self, model, x) -> tuple[np.ndarray, dict]:
        """The forward pass on the unperturbed input (1, ...): (class probabilities, extra keyword
        arguments for ``_explain``)."""
        return self.first_passes(model, x)[0]

    def raw_upsample(self) -> str | None:
        """When the map is ``raw_map`` scaled up and nothing else, how ("bilinear" or
        "bilinear-align-corners", bit for bit with kernels.resize_map); else None. The data-set store then
        keeps the coarse map (onnxai.dataset.map_array scales it up)."""
        return None

    def first_layers(self, model) -> dict[str, str]:
        """{key of the first pass's extra: inner layer} that the first forward pass also exposes (none
        by default; CAMs: the chosen layer, NBDT: the head's features and pooled features)."""
        return {}

    def prepare(self, model) -> None:
        """Build what the first pass needs before any input arrives (the session exposing
        ``first_layers``): a runner may call it on another thread while it decodes. Errors come back
        from the first pass itself."""
        layers = self.first_layers(model)
        if layers:
            model.prepare_layers(list(layers.values()))

    def first_passes(self, model, batch: np.ndarray) -> list[tuple[np.ndarray, dict]]:
        """The first pass of a batch of prepared inputs (B, ...), one (probabilities, extra) per input,
        in batched forward passes (the data-set runner batches pictures through it); with
        ``first_layers`` the same pass gives their activations, extra[key] (1, ...) per input."""
        layers = self.first_layers(model)
        if not layers:
            return [(p, {}) for p in model.scores(batch)]
        acts, probs = model.activations(batch, list(layers.values()))
        return [(probs[k], {key: acts[name][k:k + 1] for key, name in layers.items()}) for k in range(len(probs))]

    def _explain(self, model, x, crop, probs, targets) -> list[Explanation]:
        raise NotImplementedError

    def _explanation(self, model, target, probs, map_, **kw) -> Explanation:
        """``score`` is always the target's probability on the input, whatever score was explained."""
        return Explanation(map=np.asarray(map_, np.float32), target=int(target), label=model.label(int(target)),
                           score=float(probs[target]), method=self.name, params=self.params(), **kw)

    # ------------------------------------------------------------------ the engine, for those that use it
    def _engine_options(self, score="probabilities", progress=None, chunk_size=None,
                        memory_budget=engine.DEFAULT_MEMORY_BUDGET):
        """Store the settings every engine-driven method takes (call from ``__init__``)."""
        self.score = score
        self._progress = progress
        self._chunk_size = None if chunk_size is None else check_count(chunk_size, "chunk_size")
        self._memory_budget = check_count(memory_budget, "memory_budget")

    def resolve_score(self, probs, targets) -> tuple[str, str | None]:
        """score="auto": the logits when a target's probability on the input is above SATURATED (a
        saturated softmax carries almost no signal: differences, means and regressions of it go flat),
        else the probabilities; unless ``logits_undefined`` gives a reason to stay on probabilities.
        -> (kind, a note saying why, or None)."""
        if self.score != "auto":
            return self.score, None
        p = float(max(probs[t] for t in targets))
        if p <= SATURATED:
            return "probabilities", None
        saturated = f"saturated: p={p:.4f} > {SATURATED} on the input"
        reason = self.logits_undefined()
        if reason:
            return "probabilities", f"{saturated}; kept on probabilities: {reason}"
        return "logits", f"{saturated}, so the logits were explained (score='probabilities' / --score probabilities to override)"

    def logits_undefined(self) -> str | None:
        """Why this configuration's map has no meaning on logits (score="auto" then keeps probabilities
        under saturation), or None."""
        return None

    def _run(self, model, x, baseline, source, ends: int = 2, check=None, kind: str | None = None) -> engine.RunResult:
        """Score every perturbation of ``source`` and the end points (1: the input, 2: and the
        baseline) in one engine run; ``check`` (see ``auto_check``) stops it when the estimate settles."""
        kind = kind or (self.score if self.score != "auto" else "probabilities")
        return engine.run(model, x, baseline, source, kind=kind, ends=ends,
                          chunk_size=self._chunk_size, memory_budget=self._memory_budget,
                          progress=self._progress, desc=self.name, check=check)

    # ------------------------------------------------------------------ num_samples="auto"
    @property
    def auto(self) -> bool:
        return getattr(self, "num_samples", None) == "auto"

    def draws(self) -> int:
        """How many samples to draw: num_samples, or max_samples when the budget is "auto"."""
        return self.max_samples if self.auto else self.num_samples

    def auto_tolerance(self, ranks: bool) -> float:
        """The tolerance of num_samples="auto": the one given, else the rule's default."""
        if self.tolerance is not None:
            return self.tolerance
        return AUTO_RANK_TOLERANCE if ranks else AUTO_TOLERANCE

    def auto_check(self, estimate, first: int = AUTO_FIRST, quarters=None, weights=None):
        """The engine's ``check`` for num_samples="auto", called between chunks. Checks start at
        ``first`` samples and are >= 5% of the samples apart; ``state["ratio"]`` keeps the last figure.

        Rank rule (``quarters`` given: pictures): ``quarters(run)`` -> per target the maps of
        budget.QUARTER_GROUPS (four disjoint quarters of the samples so far, then the three ways to pair
        them into halves); stop when every target's predicted rank disagreement with its limit
        (``predicted_disagreement``: Spearman-Brown on the halves' ``rank_correlation``, features
        weighted by ``weights``, with the exponent the quarters show) is at most tolerance (default
        AUTO_RANK_TOLERANCE). It needs no variance formula and reads what a user of the map looks at,
        its ranking.
        The rank rule also stops when every standard error is below AUTO_ERROR_FLOOR x the standard
        deviation of the values (``below_floor``, features weighted by ``weights``; extras["stop_rule"] =
        "ranks (error floor)"): features without any effect tie in the limit,
        and their order never settles.
        Error rule (otherwise: tables): ``estimate(run)`` -> (per-target values, per-target stderr);
        stop when every standard error is below tolerance (default AUTO_TOLERANCE) x the largest |value|.
        """
        rule = "ranks" if quarters is not None else "error"
        tol = self.auto_tolerance(ranks=quarters is not None)
        state = {"next": max(int(first), AUTO_FIRST), "ratio": float("inf"), "at": 0, "rule": rule, "tolerance": tol,
                 "floor": False, "exponent": None}

        def check(done, scores, input_scores, baseline_scores):
            if done < state["next"]:
                return False, None
            state["next"] = max(done + 1, int(np.ceil(done * AUTO_STEP)))
            run = engine.RunResult(scores=scores, forward_s=0.0, composite_wait_s=0.0, total_s=0.0, chunk=0,
                                   input_scores=input_scores, baseline_scores=baseline_scores)
            if quarters is not None:
                parts = self.halves_parts(done)
                figures = [split_agreements(maps, weights, self.halves_pairings, self.quarters_scale)
                           for maps in quarters(run)]
                ratio = max(predicted_disagreement(r2, r4, parts) for r2, r4 in figures)
                state["exponent"] = min(1.0 if r4 is None else rank_exponent(r2, r4) for r2, r4 in figures)
                ok, what = ratio <= tol, "rank disagreement"
                if not ok and below_floor(*estimate(run), AUTO_ERROR_FLOOR, weights):
                    ok, state["floor"] = True, True  # only ties left to order
            else:
                values, stderr = estimate(run)
                (ok, ratio), what = converged(values, stderr, tol), "error"
            state.update(ratio=ratio, at=done)
            return ok, f"{what} {ratio:.3f} (stop at {tol:g})"

        check.state = state
        return check

    halves_pairings = (0, 1, 2)  # which pairings of the quarters are halves of a balanced design (split_agreements)
    quarters_scale = True  # does the rank rule read its exponent from the quarters (else Spearman-Brown alone)?

    def halves_parts(self, n: int) -> float:
        """How many halves' worth of samples the map of n samples holds (the rank rule's Spearman-Brown
        factor): 2, as the halves share out all the samples; RISE's blocks can leave some out."""
        return 2.0

    def auto_extras(self, res: engine.RunResult, used: int, check) -> dict:
        st = check.state
        out = {"samples_scored": int(used), "stopped": res.stopped, "tolerance": st["tolerance"],
               "max_samples": self.max_samples, "stop_rule": st["rule"] + (" (error floor)" if st["floor"] else ""),
               ("rank_disagreement" if st["rule"] == "ranks" else "error_ratio"): float(st["ratio"])}
        if st["exponent"] is not None:
            out["rank_exponent"] = float(st["exponent"])
        return out


@dataclass
class Setup:
    """What a perturbation method prepares for the engine: the mask source, the baseline in model
    space, and whatever ``aggregate`` needs besides the scores (segments, windows, ...)."""

    source: engine.MaskSource
    baseline: np.ndarray
    state: dict = field(default_factory=dict)


class PerturbationMethod(Method):
    """A black-box method: masks in, scores out, one map per target.

    Subclasses call ``self._engine_options(score, progress, chunk_size, memory_budget)`` in
    ``__init__`` and implement

        setup(model, x, crop, probs)        -> Setup(source, baseline, state)
        aggregate(run, setup, targets)      -> one dict per target: map (H, W) and optionally
                                               importance, segments, raw_map, extras

    ``run`` is the engine's RunResult: ``run.scores`` (n, classes) of the perturbations and
    ``run.input_scores`` / ``run.baseline_scores`` (classes,) of the end points, all of kind
    ``self.score`` and from the same run.
    """

    def setup(self, model, x, crop, probs) -> Setup:
        raise NotImplementedError

    def aggregate(self, run: engine.RunResult, setup: Setup, targets: list[int]) -> list[dict]:
        raise NotImplementedError

    end_points = 2  # the input and the baseline; 1: the input only

    rank_rule = False  # does the method give part_maps() (num_samples="auto" then stops on the rank rule)?

    def part_maps(self, run: engine.RunResult, setup: Setup, targets: list[int], groups) -> list[list]:
        """Per target, one map per group of ``groups`` (tuples of quarter numbers 0-3): the samples in
        ``run`` are dealt into four disjoint quarters, each a valid design of its own, and a group's map
        is made from the samples of its quarters alone. What the rank rule of num_samples="auto" reads
        (budget.QUARTER_GROUPS)."""
        raise NotImplementedError

    def halves(self, run: engine.RunResult, setup: Setup, targets: list[int]) -> list[tuple]:
        """Per target, the maps (a, b) of two disjoint halves, quarters (0, 1) and (2, 3)."""
        return [tuple(maps) for maps in self.part_maps(run, setup, targets, ((0, 1), (2, 3)))]

    def rank_weights(self, setup: Setup):
        """How many pixels each value of ``part_maps``' maps stands for (None: one each)."""
        return None

    def estimate(self, run: engine.RunResult, setup: Setup, targets: list[int]) -> tuple[list, list]:
        """(per-target values, per-target standard errors) from the samples in ``run`` (a prefix of
        the drawn ones): what the num_samples="auto" check reads. Default: ``aggregate``'s
        importance and stderr."""
        parts = self.aggregate(run, setup, targets)
        return [p["importance"] for p in parts], [p["stderr"] for p in parts]

    def _explain(self, model, x, crop, probs, targets):
        kind, why = self.resolve_score(probs, targets)
        setup = self.setup(model, x, crop, probs)
        check = None
        if self.auto:
            quarters = (lambda r: self.part_maps(r, setup, targets, QUARTER_GROUPS)) if self.rank_rule else None
            check = self.auto_check(lambda r: self.estimate(r, setup, targets), setup.state.get("first", AUTO_FIRST),
                                    quarters, self.rank_weights(setup))
        res = self._run(model, x, setup.baseline, setup.source, ends=self.end_points, check=check, kind=kind)
        t0 = time.perf_counter()
        parts = self.aggregate(res, setup, targets)
        fold_s = time.perf_counter() - t0
        out = []
        for t, part in zip(targets, parts):
            extras = part.pop("extras", {})
            e = self._explanation(model, t, probs, part.pop("map"), **part)
            e.extras.update(extras)
            e.extras.setdefault("score", kind)
            if why:
                e.extras["score_note"] = why
            if check is not None:
                e.extras.update(self.auto_extras(res, res.scores.shape[0], check))
            e.timings.update(forward=res.forward_s, engine=res.total_s, aggregate=fold_s)
            out.append(e)
        return out
