"""Model: one ONNX Runtime session around a classifier, and everything onnxai needs to know about it.

- providers and sessions come from runtime.py ("auto", "cpu", "cuda" or an onnxruntime list);
- the input spec (signature.py; a fixed batch of 1 is made dynamic by graph surgery when a numerical
  check shows that is safe), the class-score output (signature.py's rule, or ``output=``) and
  whether it already holds probabilities;
- labels and preprocessing from the file's metadata, overridable;
- ``scores`` / ``predict`` in chunks of ``batch_size`` (table models: ``TABLE_ROWS_PER_RUN`` unless
  given); ``activations`` and ``tail`` (model_layers.py) through patched sessions built once and cached.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import onnxruntime as ort

from . import graph, graph_ends
from ._log import note
from .classes import (Prediction, binary_columns, check_finite, class_index, convert, labels_from_json, read_labels,
                      top_k)
from .errors import InputError, LayerError, ModelError, OutputError
from .model_layers import InnerLayers
from .model_preprocess import preprocess_for
from .signature import DTYPES, InputSpec, check_batch_size, check_input_size, choose_class_output, column_inputs, dim, guess_layout
from .preprocess import DEFAULT_MAX_PIXELS, LABELS_KEY, Preprocess, load_image
from .runtime import (OnnxruntimeFailure, batch_consistent, checked_batch_session, make_session, resolve_providers,
                      session_options, short_error)

TABLE_ROWS_PER_RUN = 16384  # rows per forward pass for table models: cheap per row, big batches amortise the call


class Model(InnerLayers):
    """An ONNX classifier in an onnxruntime session. Build it with ``onnxai.load(path)``."""

    def __init__(
        self,
        source,
        providers="auto",
        batch_size: int | None = None,
        output: str | None = None,
        preprocess: Preprocess | dict | None = None,
        labels: Sequence[str] | str | Path | None = None,
        threads: int | None = None,
        optimization: str = "all",
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ):
        check_batch_size(batch_size)
        self.max_pixels = max_pixels
        if isinstance(source, onnx.ModelProto):
            self.path = None
            self.proto = source
        else:
            self.path = Path(source)
            self.proto = graph.read_model(self.path)
        self._so = session_options(threads, optimization)
        self._providers_arg = providers
        self._bytes = self.proto.SerializeToString()
        self._providers, why = resolve_providers(providers, self._bytes, self._so)
        if why:
            note(why)
        self.session = self._make_session(self._bytes)
        self.provider = self.session.get_providers()[0]
        self._patched: dict[tuple, ort.InferenceSession] = {}
        self._tails: dict[tuple, ort.InferenceSession] = {}
        self._init_input()
        self._init_output(output)
        self._init_metadata(preprocess, labels)
        if batch_size is not None:
            self.batch_size = int(batch_size)
        elif not self.input.is_image:
            self.batch_size = TABLE_ROWS_PER_RUN
        else:
            self.batch_size = 64 if self.provider == "CUDAExecutionProvider" else 32
        if self.batch_size < 1:
            raise InputError("batch_size must be at least 1")
        if self.fixed_batch is not None:
            self.batch_size = self.fixed_batch
        self._probe()

    # ------------------------------------------------------------------ construction
    def _make_session(self, model_bytes: bytes) -> ort.InferenceSession:
        return make_session(model_bytes, self._so, self._providers, str(self.path or "the model"))

    def _init_input(self):
        inits = {i.name for i in self.proto.graph.initializer}
        ins = [i for i in self.session.get_inputs() if i.name not in inits]
        if not ins:
            raise ModelError("the model has no inputs")
        self.inputs = ins
        first = ins[0]
        shape = tuple(dim(d) for d in first.shape)
        check_input_size(first.name, shape)
        dtype = DTYPES.get(first.type)
        if dtype is None:
            raise ModelError(f"input {first.name!r} has type {first.type}, which onnxai does not feed")
        self.fixed_batch = None
        dynamic = self._native_dynamic = len(shape) > 0 and shape[0] is None
        if len(shape) and shape[0] == 1 and len(ins) == 1:
            dynamic = self._try_dynamic_batch(first.name, shape, dtype)
            if dynamic:
                shape = (None,) + shape[1:]
        elif len(shape) and shape[0] is not None and shape[0] > 1:
            self.fixed_batch = shape[0]
        self.input = InputSpec(first.name, shape, dtype, guess_layout(shape), dynamic)
        self.columns = None  # tabular models with one input per column: [(name, dtype, width)]
        if len(ins) > 1:
            self.input, self.columns = column_inputs(ins, DTYPES)

    def _try_dynamic_batch(self, name, shape, dtype) -> bool:
        new, reason = graph_ends.make_batch_dynamic(self.proto)
        if reason is None:
            session, reason = checked_batch_session(new, name, shape, dtype, self._make_session)
            if session is not None:
                self.proto, self._bytes, self.session = new, new.SerializeToString(), session
                return True
        note(f"the model has a fixed batch of 1 and cannot be made batch-dynamic safely ({reason}); "
             "inputs run one at a time, which is slower")
        self.fixed_batch = 1
        return False

    def _init_output(self, output):
        self.outputs = outs = self.session.get_outputs()
        self.output_choice = "given (--output / output=)" if output is not None else "the only float (batch, classes) output"
        if output is not None:
            match = [o for o in outs if o.name == output]
            if not match:
                raise LayerError(f"no output named {output!r}; the outputs are {[o.name for o in outs]}")
            chosen = match[0]
        else:
            chosen, why = choose_class_output(outs, {o.name for o in outs if graph_ends.final_softmax(self.proto, o.name)[0]})
            if why:  # several candidates: say which one and why
                self.output_choice = why
                note(f"{why} (name another with --output / output=)")
            if chosen is None and any(o.type.startswith("seq(map(") for o in outs):
                chosen = self._unzip_output(outs)  # ZipMap (skl2onnx's default): read the tensor it wraps
            ranked = None if chosen is None else graph_ends.topk_source(self.proto, chosen.name)
            if ranked is not None:  # the k best values in rank order: read the scores they were taken from
                note(f"the output {chosen.name!r} is a TopK of {ranked!r} (its columns are ranks, not classes): "
                     f"reading {ranked!r}, every class's score")
                chosen = self._expose_output(ranked) or chosen
            if chosen is None:
                desc = ", ".join(f"{o.name} {o.type} {o.shape}" for o in outs)
                raise ModelError(
                    f"cannot tell which output holds class scores (outputs: {desc}); onnxai needs a float "
                    "tensor of shape (batch, classes): name it with output=/--output"
                )
        self.output = chosen.name
        # Is it already a softmax? Look for a final Softmax / LogSoftmax node; otherwise decided by the probe.
        self._softmax_input, self.log_probabilities = graph_ends.final_softmax(self.proto, self.output)
        self.outputs_probabilities = self._softmax_input is not None or graph_ends.ends_in_quantized_softmax(
            self.proto, self.output)
        self.binary, self._sigmoid_input = None, None  # one score column: decided by the probe

    def _init_metadata(self, preprocess, labels):
        meta = {p.key: p.value for p in self.proto.metadata_props}
        self.metadata = meta
        self.preprocess, self.preprocess_source = preprocess_for(self.proto, meta, self.input, preprocess)
        if labels is None and LABELS_KEY in meta:
            try:
                labels = labels_from_json(json.loads(meta[LABELS_KEY]), f"the model's {LABELS_KEY} metadata")
            except (json.JSONDecodeError, RecursionError, InputError) as e:
                note(f"ignoring the model's {LABELS_KEY} metadata ({e}); classes are shown by index")
                labels = None
        elif isinstance(labels, (str, Path)):
            labels = read_labels(labels)
        if labels is None:  # classifier nodes list their classes (ZipMap, ai.onnx.ml)
            labels = graph_ends.graph_class_labels(self.proto, self.output)
        self.labels = list(labels) if labels is not None else None

    def _probe(self):
        """One forward pass on a fixed random input: number of classes, softmax already applied?"""
        shape = tuple(d if d is not None else 1 for d in self.input.shape)
        if self.input.is_image:
            h, w = self.input.hw
            if h is None or w is None:
                h, w = self.preprocess.crop_size()
            if self.input.layout == "NCHW":
                shape = (shape[0], self.input.channels or 3, h, w)
            else:
                shape = (shape[0], h, w, self.input.channels or 3)
        self.probe_shape = shape  # the concrete input shape the layers are read at (grids.py)
        x = np.random.default_rng(0).standard_normal(shape).astype(self.input.dtype)
        try:
            raw = self._run_raw(x)
        except OnnxruntimeFailure as e:
            raise ModelError(f"a test run of the model failed: {e}") from None
        if self._native_dynamic and self.input.is_image and self.columns is None:
            self._check_batch_mixing(shape)
        if self._softmax_input is None:  # a final Sigmoid: its input holds the logits
            self._sigmoid_input = graph_ends.softmax_input(self.proto, self.output, "Sigmoid")
        if raw.shape[1] == 1:  # a binary classifier's one column: its class and the complement
            self.binary = "probability" if self._sigmoid_input is not None else "logit"
            self.outputs_probabilities = self.binary == "probability"
            note(f"the model scores one column ({self.output!r}); read as a binary classifier's "
                 f"{'probability (it ends in a Sigmoid)' if self.outputs_probabilities else 'logit (no Sigmoid ends it)'}"
                 ": class 1 is that column's class, class 0 its complement")
            raw = binary_columns(raw, self.binary)
        elif self._sigmoid_input is not None:  # multi-label: independent probabilities, never softmaxed
            self.outputs_probabilities = True
            note(f"the model ends in a Sigmoid over {raw.shape[1]} columns: read as independent (multi-label) "
                 "probabilities, each class's own; they need not sum to 1")
        self.num_classes = raw.shape[1]
        if not self.outputs_probabilities:
            rows = raw.sum(axis=1)
            self.outputs_probabilities = bool(
                np.all(raw >= -1e-6) and np.all(raw <= 1 + 1e-6) and np.allclose(rows, 1.0, atol=1e-4)
            )
        if self.labels is not None and len(self.labels) != self.num_classes:
            raise InputError(
                f"{len(self.labels)} labels were given but the model scores {self.num_classes} classes; "
                "give a labels file with one name per class"
            )

    def _check_batch_mixing(self, shape):
        """A batch-dynamic picture model whose batch of 2 scores unlike two single runs mixes its inputs (a
        Softmax or a normalisation over the batch axis), and one whose batch of 2 fails while one input
        runs cannot take batches: either runs one input at a time. The tolerance leaves room for a GPU's
        batch-size-dependent convolution algorithms."""
        try:
            same = batch_consistent(self.session, self.input.name, (None,) + shape[1:], self.input.dtype, 1e-2, 1e-3,
                                    atol_scaled=True, equal_nan=True)
            why = "it scores a batch of 2 unlike two single runs: it mixes the inputs of a batch, e.g. a Softmax " \
                  "or a normalisation over the batch axis"
        except Exception as e:  # a single input ran (the probe): a batch fails, e.g. a Reshape that fixes it to 1
            same, why = False, f"a batch of 2 fails ({short_error(e)[:160]})"
        if not same:
            note(f"the model declares a dynamic batch but {why}; inputs run one at a time, which is slower")
            self.fixed_batch = self.batch_size = 1

    # ------------------------------------------------------------------ running
    def _run_raw(self, x: np.ndarray, session=None, outputs=None) -> np.ndarray | list:
        session = session or self.session
        names = outputs or [self.output]
        try:
            res = session.run(names, {self.input.name: x} if self.columns is None else self._feed(x))
        except Exception as e:
            raise OnnxruntimeFailure(short_error(e)) from None
        return self._class_rows(res[0], x.shape[0]) if outputs is None else res

    def _class_rows(self, r: np.ndarray, rows: int, name: str | None = None) -> np.ndarray:
        """The class scores (or logits: ``name``) as (rows, columns): more axes (a 1x1 map; logits before a
        Squeeze) flattened, an (n,) column made (n, 1); a batch folded into the classes refused. A binary
        classifier's one column is made two by ``convert``."""
        r = r.reshape(r.shape[0], -1) if r.ndim > 2 else r[:, None] if r.ndim == 1 else r
        if r.shape[0] != rows:
            raise OutputError(f"the model returned {r.shape[0]} row(s) of scores ({name or self.output!r}, shape "
                              f"{r.shape}) for {rows} inputs: its graph folds the batch axis into the classes, so "
                              "scores of different inputs would mix. Re-export it with the batch as the output's "
                              "first axis, or run --batch-size 1")
        return r

    def _feed(self, x: np.ndarray) -> dict:
        """Split an (n, columns) table into the model's per-column inputs, each in its own dtype."""
        feed, j = {}, 0
        for name, dtype, width in self.columns:
            feed[name] = np.ascontiguousarray(x[:, j:j + width], dtype=dtype)
            j += width
        return feed

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        if batch.dtype != self.input.dtype:
            batch = batch.astype(self.input.dtype)
        want = self.input.shape
        if batch.ndim != len(want):
            raise InputError(
                f"the model expects input {self.input.describe()}; got an array of shape {batch.shape}"
            )
        for got, exp in zip(batch.shape[1:], want[1:]):
            if exp is not None and got != exp:
                raise InputError(
                    f"the model expects input {self.input.describe()}; got an array of shape {batch.shape}"
                )
        return np.ascontiguousarray(batch)

    def _padded_run(self, batch: np.ndarray, session=None, names=None):
        """One session run on at most ``batch_size`` rows. A fixed-batch model's input is padded with
        zeros and its outputs trimmed back to the rows given."""
        m = batch.shape[0]
        if self.fixed_batch is not None and m != self.fixed_batch:
            pad = np.zeros((self.fixed_batch - m,) + batch.shape[1:], batch.dtype)
            batch = np.concatenate([batch, pad])
        res = self._run_raw(batch, session, names)
        return res[:m] if names is None else [r[:m] for r in res]

    def _chunks(self, batch: np.ndarray):
        for i in range(0, batch.shape[0], self.batch_size):
            yield batch[i:i + self.batch_size]

    def scores(self, batch: np.ndarray, kind: str = "probabilities") -> np.ndarray:
        """(n, classes) float32 class probabilities (default) or logits for a batch of model inputs.

        kind: "probabilities" (softmax applied unless the model already outputs probabilities),
        "logits" (pre-softmax values: the Softmax node's input when the graph ends in one, else the
        raw output; when the model only outputs probabilities, each class's log-odds against the rest,
        ``classes.log_odds``), or "raw" (the output as the graph gives it: a binary classifier's one
        column stays one, e.g. a regressor's value).
        """
        batch = self.check_batch(batch)
        if 0 < batch.shape[0] <= self.batch_size:
            return self.run_batch(batch, kind)  # one chunk: no concatenate copy
        parts = [self.run_batch(chunk, kind) for chunk in self._chunks(batch)]
        if not parts:
            return check_finite(self.convert(np.zeros((0, self.num_classes), np.float32), kind))
        return np.concatenate(parts)

    def run_batch(self, batch: np.ndarray, kind: str = "probabilities") -> np.ndarray:
        """One forward pass on a ready batch (right dtype and shape, at most ``batch_size`` rows).

        The engine's inner call: no shape checks and no chunking; pads a fixed-batch model's input.
        """
        m = batch.shape[0]
        if self.fixed_batch is not None and m > self.fixed_batch:
            return np.concatenate([self.run_batch(batch[i:i + self.fixed_batch], kind)
                                   for i in range(0, m, self.fixed_batch)])
        if kind == "logits" and self.logits_output != self.output:  # the input of a final Softmax / Sigmoid
            r = self._padded_run(batch, self._patched_session((self.logits_output,)), [self.logits_output])[0]
            r = self._class_rows(r, m, self.logits_output)
            out = r if self.binary is None else binary_columns(r, "logit")
        else:
            out = self.convert(self._padded_run(batch), kind)
        return check_finite(out)

    @property
    def logits_output(self) -> str:
        """The tensor that holds the logits: the input of a final Softmax or Sigmoid, else the class-score
        output."""
        return self._softmax_input or self._sigmoid_input or self.output

    def convert(self, raw: np.ndarray, kind: str) -> np.ndarray:
        """Turn raw class-score outputs into the asked kind (see ``scores``); a binary classifier's one
        column becomes two classes (classes.binary_columns) except for "raw", the output as it is."""
        if self.log_probabilities and kind != "raw":  # a final LogSoftmax: log-probabilities
            raw = np.exp(raw)
        if self.binary is not None and kind != "raw":
            raw = binary_columns(raw, self.binary)
        return convert(raw, kind, self.outputs_probabilities)

    # ------------------------------------------------------------------ pictures
    def require_image(self):
        if not self.input.is_image:
            raise InputError(
                f"this command needs an image model, but the input is {self.input.describe()}; "
                "for tables use the tabular explainers"
            )

    def prepare(self, image, cropped: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Picture (path or RGB array) -> (x: model input with a batch axis of 1, crop: the RGB picture the model sees).

        cropped: the picture already is what the model sees (e.g. ``Explanation.image``): it is only
        normalised, not resized and cropped again (which would zoom it by resize/crop).
        """
        self.require_image()
        img = load_image(image, max_pixels=self.max_pixels)
        if cropped:
            h, w = self.input.hw
            want = (h or img.shape[0], w or img.shape[1])
            if img.shape[:2] != want:
                raise InputError(
                    f"cropped=True needs a picture of the model's input size {want[0]}x{want[1]}, got "
                    f"{img.shape[0]}x{img.shape[1]}; leave cropped off to resize and crop it"
                )
            crop = np.ascontiguousarray(img)
        else:
            crop = self.preprocess.crop_image(img, self.input.hw)
        x = self.preprocess.to_input(crop, self.input.dtype)
        if self.preprocess.layout != self.input.layout:
            raise InputError(
                f"the preprocessing layout {self.preprocess.layout} differs from the model's input layout "
                f"{self.input.layout}; fix --layout"
            )
        h, w = self.input.hw
        if (h is not None and crop.shape[0] != h) or (w is not None and crop.shape[1] != w):
            raise InputError(
                f"the preprocessing produces {crop.shape[0]}x{crop.shape[1]} pictures but the model takes "
                f"{h}x{w}; fix --size/--crop"
            )
        return x, crop

    def predict(self, images, top: int = 5) -> list[list[Prediction]]:
        """Top-k classes for one picture or a list of pictures (paths or RGB arrays)."""
        # one picture: a path, or an array of one picture (greyscale H x W, or H x W x 3/4)
        if isinstance(images, np.ndarray):  # (N, H, W, C) is N pictures; anything else is one (checked there)
            items = list(images) if images.ndim == 4 else [images]
        elif isinstance(images, (list, tuple)) or (hasattr(images, "__iter__") and not isinstance(images, (str, bytes))):
            items = list(images)
        else:
            items = [images]
        if not items:
            return []
        batch = np.concatenate([self.prepare(im)[0] for im in items])
        return [self.top(p, top) for p in self.scores(batch)]

    def top(self, probs: np.ndarray, k: int = 5) -> list[Prediction]:
        return top_k(probs, k, self.label)

    def label(self, index: int) -> str:
        if self.labels is not None and 0 <= index < len(self.labels):
            return str(self.labels[index])
        return f"class {index}"

    def class_index(self, target) -> int:
        """A class given as an index, an index string, or a (case-insensitive) label."""
        return class_index(target, self.labels, self.num_classes)

    def __repr__(self):
        where = str(self.path) if self.path else "<in-memory model>"
        return f"Model({where}, input={self.input.describe()}, output={self.output!r}, provider={self.provider})"


def load(
    path,
    providers="auto",
    batch_size: int | None = None,
    output: str | None = None,
    preprocess: Preprocess | dict | None = None,
    labels=None,
    threads: int | None = None,
    optimization: str = "all",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Model:
    """Open an ONNX classifier for explaining. See ``Model`` for the arguments (``max_pixels``: the largest picture read)."""
    return Model(path, providers=providers, batch_size=batch_size, output=output, preprocess=preprocess,
                 labels=labels, threads=threads, optimization=optimization, max_pixels=max_pixels)

