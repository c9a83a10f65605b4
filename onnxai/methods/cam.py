"""CAM and Grad-CAM from the ONNX graph itself: no autograd, no framework.

CAM (Zhou et al. 2016) needs a linear head on a global average pooling, scores = W @ mean_ij(A) + b:

    map = sum_k W[c, k] * A_k                       upsampled bilinearly to the input size, no ReLU

    relu   clip the map at 0 (CAM itself keeps the sign; the low-res map's mean plus b[c] is the logit)

Grad-CAM (Selvaraju et al. 2017) on any layer A (K channels of Z = h * w values):

    alpha_k = (1/Z) sum_ij d y_c / d A_kij          map = ReLU(sum_k alpha_k A_k), then upsampled

y_c is the target's pre-softmax logit when the graph ends in a Softmax (the tail is cut before it),
else the model's output; ``extras["score"]`` says which. ``sum_ij d y_c / d A_kij`` is the
directional derivative of the tail (the sub-model from the layer to the scores) along "all of
channel k", found one of three ways (``gradient``):

    "exact"         the layer is the linear head's input: y_c = sum_k W[c,k] (1/Z) sum_ij A_kij + b[c],
                    so d y_c / d A_kij = W[c,k] / Z and alpha_k = W[c,k] / Z (Grad-CAM = ReLU(CAM) / Z)
    "elementwise"   only per-element ops (Relu, Clip, BatchNormalization, x*sigmoid(x), ...) lie between
                    the layer and the head's input F = g(A): d y_c / d A_kij = W[c,k] g'(A_kij) / Z with
                    g' from two runs of that segment (central difference, every element at once)
    "central"       anything else: 2K runs of the tail, batched, A +- eps * (channel k all ones), with
                    eps = step * (mean |A| + 1e-12): alpha_k = (y(A + eps e_k) - y(A - eps e_k)) / (2 eps Z);
                    what a skip connection carries around the layer is held at its value (``extras["held"]``):
                    the partial derivative autograd gives at a hooked layer (pytorch-grad-cam)
    "auto"          the first that applies, in that order

Both supply only their channel weights (``LayerMethod.channel_weights``); the layer's base class
puts the chosen layer (and why), its shape and the low-resolution map (``raw_map``) in the result.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, LayerError
from .base import check_number
from .layers import LayerMethod, check_reading, elementwise_segment, model_facts, resolve_layer, upsample

GRADIENTS = ("auto", "exact", "elementwise", "central")
_FD_BUDGET = 64 * 2**20  # bytes of perturbed activations per tail chunk


class CAM(LayerMethod):
    name = "cam"

    def __init__(self, layer: str = "auto", relu: bool = False, align_corners: bool = False,
                 channel_axis: int | None = None, prefix_tokens: int | None = None):
        self.layer = layer
        self.relu = bool(relu)
        self.align_corners = bool(align_corners)
        self.channel_axis, self.prefix_tokens = check_reading(channel_axis, prefix_tokens)

    def choose_layer(self, model):
        facts = model_facts(model)
        head = facts["head"]
        if head is None:
            raise LayerError(facts["head_error"])
        choice = resolve_layer(model, self.layer)
        if choice.name != head.features:
            raise LayerError(
                f"CAM reads the features the linear head pools ({head.features!r}), not {choice.name!r}; "
                "use layer='auto' for CAM, or Grad-CAM / Score-CAM for other layers"
            )
        return choice

    def channel_weights(self, model, x, crop, probs, targets, layer):
        head = layer.choice.head
        A = layer.maps[0]
        if head.weight.shape[1] != A.shape[0]:
            raise LayerError(f"the head's weight is {head.weight.shape} but {layer.choice.name!r} has {A.shape[0]} "
                             "channels")
        weights = head.weight[targets].astype(np.float64)  # (T, K)
        pooled = A.astype(np.float64).mean(axis=(1, 2))  # the map's mean = the weights on the pooled features
        extras = []
        for i, t in enumerate(targets):
            low_mean = float(weights[i] @ pooled)
            extras.append(dict(bias=float(head.bias[t]), logit=None if self.relu else low_mean + float(head.bias[t]),
                               head=" -> ".join(head.nodes)))
        return weights, extras

    def layer_map(self, low, h, w):
        """CAM keeps the sign (``relu`` clips it) and upsamples the class map as it is."""
        if self.relu:
            low = np.maximum(low, 0.0)
        return upsample(low, h, w, self.align_corners), low


class GradCAM(LayerMethod):
    name = "grad-cam"

    def __init__(self, layer: str = "auto", gradient: str = "auto", step: float = 1e-3, align_corners: bool = False,
                 channel_axis: int | None = None, prefix_tokens: int | None = None):
        if gradient not in GRADIENTS:
            raise InputError(f"gradient must be one of {GRADIENTS}, not {gradient!r}")
        self.layer = layer
        self.gradient = gradient
        self.step = check_number(step, "step", 0, low_open=True)
        self.align_corners = bool(align_corners)
        self.channel_axis, self.prefix_tokens = check_reading(channel_axis, prefix_tokens)

    def channel_weights(self, model, x, crop, probs, targets, layer):
        choice, acts, view, maps = layer.choice, layer.acts, layer.view, layer.maps
        K, h, w = maps.shape[1:]
        Z = h * w
        score_name = getattr(model, "logits_output", None) or model.output
        if getattr(model, "_softmax_input", None) is not None:
            score = f"logits (the input of the graph's {'LogSoftmax' if getattr(model, 'log_probabilities', False) else 'Softmax'})"
        elif getattr(model, "binary", None) is not None:
            score = "logits of a binary classifier's one column z, as (-z/2, z/2)"
        elif getattr(model, "_sigmoid_input", None) is not None:
            score = "logits (the input of the graph's final Sigmoid)"
        elif model.outputs_probabilities:
            score = "probabilities (the model outputs them and has no Softmax node to cut before)"
        else:
            score = "logits (the model's output)"
        head = choice.head
        how = self.gradient
        exact_ok = head is not None and choice.name == head.features and head.logits == score_name
        elem_ok = (head is not None and head.logits == score_name and choice.name != head.features
                   and how in ("auto", "elementwise")
                   and _elementwise(model, choice.name, head.features, acts.shape))
        if how == "auto":
            how = "exact" if exact_ok else "elementwise" if elem_ok else "central"
        if how == "exact" and not exact_ok:
            raise LayerError(f"gradient='exact' needs the layer to be the linear head's input ({_head_name(head)}); "
                             f"{choice.name!r} is not: use gradient='central'")
        if how == "elementwise" and not elem_ok:
            raise LayerError(f"gradient='elementwise' needs only per-element ops between {choice.name!r} and the "
                             f"linear head's input ({_head_name(head)}); use gradient='central'")
        runs = 0
        if how == "exact":
            sums = head.weight[targets].astype(np.float64)  # (T, K): sum_ij dy/dA_kij = Z * W[c,k] / Z
        elif how == "elementwise":
            sums, runs = self._elementwise_sums(model, choice, head, acts, view, targets)
        else:
            sums, runs, held = self._central_sums(model, x, choice.name, score_name, acts, view, maps, targets)
        extras = dict(gradient=how, score=score, tail_runs=runs)
        if how == "central":
            extras["held"] = held
        return sums / Z, [dict(extras) for _ in targets]

    def _eps(self, a: np.ndarray) -> float:
        return float(self.step * (np.mean(np.abs(a), dtype=np.float64) + 1e-12))

    def _elementwise_sums(self, model, choice, head, acts, view, targets):
        """sum_ij d y_c / d A_kij = W[c,k] / Z * sum_ij g'(A_kij), with g' by a central difference."""
        seg = model.tail(choice.name, output=head.features)
        eps = np.float32(self._eps(acts))
        both = np.concatenate([acts + eps, acts - eps])
        f = seg.values(both)
        if f.shape != both.shape:
            raise LayerError(f"the segment {choice.name!r} -> {head.features!r} changed the shape {acts.shape} -> "
                             f"{f.shape[1:]}; use gradient='central'")
        delta = both[:1].astype(np.float64) - both[1:]  # the step float32 really took, per element
        gprime = (f[:1].astype(np.float64) - f[1:]) / delta  # (1, ...) in the layer's layout
        g = view.maps(gprime)[0]  # (K, h, w)
        Z = g.shape[1] * g.shape[2]
        return head.weight[targets].astype(np.float64) * g.sum(axis=(1, 2))[None] / Z, 2

    def _central_sums(self, model, x, layer, score_name, acts, view, maps, targets):
        """Directional derivatives along each channel by central differences, 2 tail runs per channel. Tensors
        a skip connection carries around the layer are held at their values (``held``): the partial
        derivative, as autograd gives at a hooked layer (pytorch-grad-cam)."""
        tail = model.tail(layer, output=score_name, hold_at=x)
        K = maps.shape[1]
        eps = self._eps(acts)
        per = max(1, _FD_BUDGET // max(1, 2 * acts.nbytes))  # channels per chunk
        sums = np.empty((len(targets), K), np.float64)
        base = np.broadcast_to(maps, (2 * min(per, K),) + maps.shape[1:])
        for c0 in range(0, K, per):
            c1 = min(K, c0 + per)
            m = c1 - c0
            batch = np.array(base[: 2 * m], np.float32)  # (2m, K, h, w)
            j = np.arange(m)
            batch[2 * j, c0 + j] += np.float32(eps)
            batch[2 * j + 1, c0 + j] -= np.float32(eps)
            y = tail(view.to_layer(batch, acts)).astype(np.float64)  # (2m, classes)
            sums[:, c0:c1] = ((y[0::2] - y[1::2]) / (2.0 * eps))[:, targets].T
        return sums, 2 * K, list(tail.held)


def _elementwise(model, start: str, end: str, shape: tuple) -> bool:
    """elementwise_segment, remembered per model (it cuts and shape-infers the graph)."""
    memo = model_facts(model).setdefault("elementwise", {})
    key = (start, end, tuple(shape[1:]))
    if key not in memo:
        memo[key] = elementwise_segment(model.proto, start, end, shape)
    return memo[key]


def _head_name(head) -> str:
    return repr(head.features) if head is not None else "the model has none"
