"""Score-CAM (Wang et al. 2020): the layer's own activations, upsampled, as soft masks on the input.

One forward pass exposes the layer's K channels A_k; each is upsampled bilinearly to the input size
and min-max normalised, H_k = (up(A_k) - min) / (max - min), and x o H_k (composited over the fill,
zero in model space by default) goes through the perturb-and-score engine. The masks of a chunk are
made when the engine asks for them (never all K at once). With s_k the target's score of x o H_k:

    map = ReLU(up(sum_k w_k A_k))          raw_map: ReLU(sum_k w_k A_k) at the layer's resolution
                                           (relu_first: up(ReLU(sum_k w_k A_k)), pytorch-grad-cam's order)

    weighting "score"     w_k = s_k                          the authors' code (haofanwang/Score-CAM)
              "increase"  w_k = s_k - s(baseline)            the paper's "increase of confidence", eq. 2
              "softmax"   w = softmax_k(s_k)                 pytorch-grad-cam's ScoreCAM, MATLAB's example
    score     "probabilities" (post-softmax, the authors') or "logits" (pre-softmax; pytorch-grad-cam
              scores logits and soft-maxes them over channels); "auto" (the authors' and paper presets):
              the probabilities unless the target's probability on the input is above 0.99, where a
              saturated softmax leaves the masked scores nearly equal, then the logits for the
              "increase" weighting (a difference of scores) and the probabilities kept for "score"
              (w_k = s_k has no meaning on logits, which have no zero: on a ViT trained to saturation
              it gave a flat map), said in extras["score"] and extras["score_note"]
    align_corners  of the bilinear upsampling of the masks: False is F.interpolate's default (the
              authors); pytorch-grad-cam's nn.UpsamplingBilinear2d uses True. The map itself is always
              upsampled with align_corners=False (the authors' F.interpolate, pytorch-grad-cam's cv2.resize)
    relu_first  clip the low-resolution map at 0 before upsampling it (pytorch-grad-cam) instead of after
    preset    "authors" (default: score, auto, align_corners False), "paper" (increase, auto),
              "pytorch-grad-cam" (softmax, logits, align_corners True, relu_first,
              chunks of 16, its default batch); explicit options override the preset

Constant channels (max == min: the normalised map is 0/0) take the convention H_k = 0, so x o H_k is
the fill itself for every one of them: they are not pushed through the model one by one. Under
"score" they are dropped (the authors' code skips them), under "increase" their weight is exactly 0,
and under "softmax" they enter the softmax with the fill's score, from one forward pass shared by
all of them (pytorch-grad-cam scores each of them on that same input). ``skip_constant=False``
pushes them through the engine anyway; the map is the same.
"""

from __future__ import annotations

import numpy as np

from .. import engine, kernels
from ..errors import InputError
from .base import check_score
from .fills import make_fill
from .layers import LayerMethod, check_reading, upsample

WEIGHTINGS = ("score", "increase", "softmax")
PRESETS = {
    "authors": dict(weighting="score", score="auto", align_corners=False, relu_first=False),  # auto: see below
    "paper": dict(weighting="increase", score="auto", align_corners=False, relu_first=False),
    "pytorch-grad-cam": dict(weighting="softmax", score="logits", align_corners=True, relu_first=True, chunk_size=16),
}


class ScoreCAM(LayerMethod):
    name = "score-cam"
    gradients = False  # reads activations only: on a ViT, the residual stream after the last block

    def __init__(self, layer: str = "auto", preset: str = "authors", weighting: str | None = None,
                 score: str | None = None, align_corners: bool | None = None, relu_first: bool | None = None,
                 fill="zero", skip_constant: bool = True, channel_axis: int | None = None,
                 prefix_tokens: int | None = None, progress: bool | None = None, chunk_size: int | None = None,
                 memory_budget: int = engine.DEFAULT_MEMORY_BUDGET):
        if not isinstance(preset, str) or preset not in PRESETS:
            raise InputError(f"preset must be one of {list(PRESETS)}, not {preset!r}")
        p = PRESETS[preset]
        weighting = p["weighting"] if weighting is None else weighting
        if weighting not in WEIGHTINGS:
            raise InputError(f"weighting must be one of {WEIGHTINGS}, not {weighting!r}")
        self.layer = layer
        self.preset = preset
        self.weighting = weighting
        self.align_corners = bool(p["align_corners"] if align_corners is None else align_corners)
        self.relu_first = bool(p["relu_first"] if relu_first is None else relu_first)
        self.fill = fill
        self.skip_constant = bool(skip_constant)
        self.channel_axis, self.prefix_tokens = check_reading(channel_axis, prefix_tokens)
        chunk_size = chunk_size if chunk_size is not None else p.get("chunk_size")
        self._engine_options(check_score(p["score"] if score is None else score, allow_auto=True), progress,
                            chunk_size, memory_budget)

    def logits_undefined(self) -> str | None:
        """w_k = s_k on logits moves with any constant added to them: the switch is for differences."""
        if self.weighting == "score":
            return ("the 'score' weighting (w_k = s_k) is not defined on logits (they have no zero); "
                    "preset='paper' (increase of the score) or weighting='increase' switches")
        return None

    def channel_weights(self, model, x, crop, probs, targets, layer):
        A = np.ascontiguousarray(layer.maps[0], np.float32)  # (K, h, w)
        K = A.shape[0]
        H, W = crop.shape[:2]
        flat = A.reshape(K, -1)
        constant = flat.max(axis=1) == flat.min(axis=1)  # (K,) bool
        pushed = np.flatnonzero(~constant) if self.skip_constant else np.arange(K)
        align = self.align_corners

        def make(start: int, stop: int) -> np.ndarray:  # (stop - start, H, W) float32 soft masks
            sel = pushed[start:stop]
            up = kernels.resize_stack(A[sel], H, W, method="bilinear", align_corners=align)
            v = up.reshape(up.shape[0], -1)
            lo = v.min(axis=1)
            span = v.max(axis=1) - lo
            scale = np.where((span > 0) & ~constant[sel], 1.0 / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)
            v -= lo[:, None]
            v *= scale[:, None]
            return up

        baseline = make_fill(model, crop, x, self.fill)
        kind, why = self.resolve_score(probs, targets)
        res = self._run(model, x, baseline, engine.SoftMasks(n=len(pushed), make=make), kind=kind)
        base_scores = res.baseline_scores.astype(np.float64)  # the fill itself: what every constant channel shows
        scores = np.zeros((K, base_scores.shape[0]), np.float64)
        scores[pushed] = res.scores
        if self.skip_constant:
            scores[constant] = base_scores
        weights = np.empty((len(targets), K))
        for i, t in enumerate(targets):
            s = scores[:, t]
            if self.weighting == "score":
                weights[i] = np.where(constant, 0.0, s)
            elif self.weighting == "increase":
                weights[i] = np.where(constant, 0.0, s - base_scores[t])
            else:
                z = np.exp(s - s.max())
                weights[i] = z / z.sum()
        extras = dict(channels=int(K), constant_channels=int(constant.sum()), forward_passes=int(len(pushed)),
                      weighting=self.weighting, score=kind, **({"score_note": why} if why else {}))
        timings = dict(forward=res.forward_s, engine=res.total_s)
        return weights, [dict(extras, timings=timings) for _ in targets]

    def raw_upsample(self) -> str | None:
        """Only relu_first makes the map a function of the clipped grid (raw_map); its upsampling never
        aligns corners (align_corners is for the masks)."""
        return "bilinear" if self.relu_first else None

    def layer_map(self, low, h, w):
        """relu_first: clip before upsampling (pytorch-grad-cam); the map itself is always upsampled with
        align_corners=False (F.interpolate's default, cv2's) and clipped at 0."""
        if self.relu_first:
            low = np.maximum(low, 0.0)
        return np.maximum(upsample(low, h, w, False), 0.0), np.maximum(low, 0.0)
