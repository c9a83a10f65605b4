"""The Model's inner layers: the tensors a CAM reads, exposed through patched sessions that are built
once per set of names and cached, the tail sub-models from a layer to the class scores, and an inner
tensor made the class-score output (what a ZipMap wraps, what a final TopK ranks)."""

from __future__ import annotations

import functools

import numpy as np
import onnxruntime as ort

from . import graph, graph_ends, grids
from .classes import binary_columns, check_finite
from .errors import LayerError
from .runtime import Tail


class InnerLayers:
    """Mixed into Model: needs its proto, session factory, input, output and batch helpers."""

    def layers(self) -> list[graph.Layer]:
        """Every tensor the graph computes, each with its grids.Reading (is it a map over the picture?)."""
        return grids.list_layers(self.proto, self.input.name, self.probe_shape, self.input.layout,
                                 [self.logits_output])

    def _unzip_output(self, outs):
        """Point the model at the float tensor a ZipMap wraps (exposed as an output); returns that output."""
        for name in graph_ends.zipmap_sources(self.proto, [o.name for o in outs]):
            found = self._expose_output(name)
            if found is not None:
                return found
        return None

    def _expose_output(self, name: str):
        """Point the model at inner tensor ``name``, exposed as an output; returns that output (None when
        the session does not list it)."""
        proto = graph.expose(self.proto, [name])
        session = self._make_session(proto.SerializeToString())
        match = [s for s in session.get_outputs() if s.name == name]
        if not match:
            return None
        self.proto, self._bytes, self.session = proto, proto.SerializeToString(), session
        self.outputs = session.get_outputs()
        return match[0]

    def _patched_session(self, names: tuple) -> ort.InferenceSession:
        key = tuple(names)
        if key not in self._patched:
            self._patched[key] = self._make_session(graph.exposed_bytes(self.proto, self._bytes, list(names)))
        return self._patched[key]

    def prepare_layers(self, layers) -> None:
        """Build now the session that exposes these tensors (``activations`` builds it on first use):
        lets a caller pay for it while it does something else, e.g. decode the first pictures."""
        self._patched_session(tuple([layers] if isinstance(layers, str) else layers))

    def activations(self, x: np.ndarray, layers) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Run the model once with the named tensors exposed: ({layer: activation}, probabilities)."""
        layers = [layers] if isinstance(layers, str) else list(layers)
        x = self.check_batch(x)
        session = self._patched_session(tuple(layers))
        acts: dict[str, list] = {n: [] for n in layers}
        raws = []
        for chunk in self._chunks(x):
            res = self._padded_run(chunk, session, [self.output] + layers)
            raws.append(self._class_rows(res[0], chunk.shape[0]))
            for n, a in zip(layers, res[1:]):
                acts[n].append(a)
        join = lambda v: v[0] if len(v) == 1 else np.concatenate(v)  # noqa: E731 - one chunk: no copy
        return {n: join(v) for n, v in acts.items()}, check_finite(self.convert(join(raws), "probabilities"))

    def tail(self, layer: str, output: str | None = None, hold_at: np.ndarray | None = None) -> "Tail":
        """The sub-model from ``layer`` to the class scores (``output`` defaults to the logits). hold_at: an
        input (1, ...) at whose values the tensors a skip connection carries around ``layer`` are held
        (graph.extract_tail's hold); without it such a layer is a LayerError."""
        output = output or self.logits_output
        key = (layer, output, hold_at is not None)
        if key not in self._tails:
            sub = graph.extract_tail(self.proto, layer, [output], {self.input.name: self.probe_shape}, key[2])
            self._tails[key] = self._make_session(sub.SerializeToString())
        start = self._tails[key].get_inputs()[0]
        if start.type not in ("tensor(float)", "tensor(double)", "tensor(float16)"):
            raise LayerError(f"layer {layer!r} holds {start.type} values (a quantized model's activation): running "
                             "the model on from it needs float values; pick a float layer (`onnxai inspect MODEL "
                             "--layers`) or a method that only reads it (score-cam) or perturbs the picture")
        held = tuple(i.name for i in self._tails[key].get_inputs()[1:])
        inner = [h for h in held if h != self.input.name]
        values = self.activations(hold_at, inner)[0] if inner else {}
        values.update({h: self.check_batch(hold_at) for h in held if h == self.input.name})
        reading = None  # a binary classifier's one column, made two classes as Model.scores does
        if self.binary is not None and output in (self.output, self.logits_output):
            reading = "probability" if output == self.output and self.outputs_probabilities else "logit"
        columns = None if reading is None else functools.partial(binary_columns, reading=reading)
        return Tail(self._tails[key], layer, output, self.batch_size, held, values, columns)
