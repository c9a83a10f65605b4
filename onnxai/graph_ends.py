"""Pure ONNX surgery on a classifier's two ends: ModelProto in, ModelProto or facts out.

- ``make_batch_dynamic``: turn a fixed batch of 1 into a symbolic batch axis where that is safe;
- ``zipmap_sources``: the probability tensors skl2onnx's ZipMap outputs (seq(map)) wrap, which a
  session can return once they are exposed (``graph.expose``);
- ``softmax_input``: the tensor a final Softmax reads (the logits), through pass-through ops;
  ``final_softmax``: the same for a Softmax or a LogSoftmax, and which;
- ``topk_source``: the scores a final TopK ranks (an output of the k best values is not one per class);
- ``graph_class_labels``: the class order, as the ZipMap or the ai.onnx.ml classifier node lists it
  (``classlabels_int64s`` / ``classlabels_strings``, i.e. scikit-learn's ``classes_``).
"""

from __future__ import annotations

import copy

import onnx
from onnx import numpy_helper

from .graph import input_names


def make_batch_dynamic(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Replace a fixed batch dimension of 1 by a symbolic one.

    Returns (new model, None) on success or (original model, reason) when the graph hard-codes the
    batch somewhere the rewrite cannot fix (a Reshape whose constant shape starts with 1 and already
    has a -1, for instance). Callers must still check the result numerically (``Model`` does).
    """
    out = copy.deepcopy(proto)
    g = out.graph
    real_inputs = set(input_names(out))
    for vi in [i for i in g.input if i.name in real_inputs] + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        if len(dims) and dims[0].HasField("dim_value"):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    # value_info carries shapes with the old batch baked in; drop it, the runtime re-infers.
    del g.value_info[:]
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    for node in g.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        shape_name = node.input[1]
        if shape_name in inits:
            arr = numpy_helper.to_array(inits[shape_name])
        elif shape_name in consts:
            arr = numpy_helper.to_array(consts[shape_name].attribute[0].t)
        else:
            continue  # computed shape: follows the data
        if arr.ndim != 1 or arr.size == 0 or arr[0] != 1:
            continue
        if (arr == -1).any():
            return proto, (
                f"Reshape node {node.name!r} hard-codes the batch size 1 next to a -1 dimension"
            )
        new = arr.copy()
        new[0] = -1
        tensor = numpy_helper.from_array(new.astype(arr.dtype), shape_name)
        if shape_name in inits:
            inits[shape_name].CopyFrom(tensor)
        else:
            consts[shape_name].attribute[0].t.CopyFrom(tensor)
    return out, None


def zipmap_sources(proto: onnx.ModelProto, outputs) -> list[str]:
    """For each of ``outputs`` (names) that a ZipMap node produces, in order: the tensor it wraps."""
    producers = {o: n for n in proto.graph.node for o in n.output}
    found = []
    for name in outputs:
        node = producers.get(name)
        if node is not None and node.op_type == "ZipMap":
            found.append(node.input[0])
    return found


_SHAPE_PASS = ("Identity", "Reshape", "Flatten", "Squeeze", "Cast")  # ops that keep the values of the scores
_QDQ_PASS = ("QuantizeLinear", "DequantizeLinear")  # the pair onnxruntime's QDQ quantization puts after an op


def _walk_back(proto: onnx.ModelProto, output: str, passes) -> tuple[str, onnx.NodeProto | None]:
    """From ``output`` back past the ``passes`` ops: (the tensor reached, the node that produces it)."""
    producers = {o: n for n in proto.graph.node for o in n.output}
    name, node = output, producers.get(output)
    while node is not None and node.op_type in passes:
        name = node.input[0]
        node = producers.get(name)
    return name, node


def softmax_input(proto: onnx.ModelProto, output: str, op: str = "Softmax") -> str | None:
    """The input of the Softmax (or ``op``, e.g. "Sigmoid") node that produces ``output`` (through
    Identity, Reshape, Flatten, Squeeze, Cast, and the QuantizeLinear / DequantizeLinear pair that
    onnxruntime's QDQ quantization puts after it), or None when the output is not that op's."""
    _, node = _walk_back(proto, output, _SHAPE_PASS + _QDQ_PASS)
    return node.input[0] if node is not None and node.op_type == op else None


def final_softmax(proto: onnx.ModelProto, output: str) -> tuple[str | None, bool]:
    """(the logits, log): the input of the Softmax or LogSoftmax that ends ``output`` and whether it is a
    LogSoftmax (torch models trained with NLLLoss end in one: their outputs are log-probabilities, and
    the log of a saturated probability is saturated too), or (None, False)."""
    found = softmax_input(proto, output)
    if found is not None:
        return found, False
    found = softmax_input(proto, output, "LogSoftmax")
    return found, found is not None


def ends_in_quantized_softmax(proto: onnx.ModelProto, output: str) -> bool:
    """Whether ``output`` is a QLinearSoftmax's (onnxruntime's QOperator quantization), dequantized: its
    values are probabilities, though no float tensor holds the logits before it."""
    return softmax_input(proto, output, "QLinearSoftmax") is not None


def topk_source(proto: onnx.ModelProto, output: str) -> str | None:
    """The tensor a TopK ranks when ``output`` is that TopK's values (through Identity, Cast, Reshape,
    Flatten, Squeeze): its columns are the k best scores in rank order, not classes. Else None."""
    name, node = _walk_back(proto, output, _SHAPE_PASS)
    return node.input[0] if node is not None and node.op_type == "TopK" and node.output[0] == name else None


_CLASSIFIERS = ("ZipMap", "TreeEnsembleClassifier", "LinearClassifier", "SVMClassifier", "TreeEnsemble")


def graph_class_labels(proto, output: str) -> list[str] | None:
    """Class names in output-column order from the ZipMap or ai.onnx.ml classifier node, else None."""
    nodes = list(proto.graph.node)
    producers = {o: n for n in nodes for o in n.output}
    # prefer a ZipMap fed by the chosen output, then the classifier node that produced it
    candidates = [n for n in nodes if n.op_type == "ZipMap" and output in n.input]
    seen = set()
    stack = [output]
    while stack:  # walk up through the ops that keep the class axis (Identity, Cast, Normalizer, ...)
        t = stack.pop()
        n = producers.get(t)
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if n.op_type in _CLASSIFIERS:
            candidates.append(n)
            break
        if n.op_type in ("Identity", "Cast", "Normalizer", "Softmax", "Div", "Mul", "Concat", "Sigmoid", "Sub",
                         "ArrayFeatureExtractor", "Reshape", "Abs", "Add"):
            stack.extend(n.input)
    for n in candidates:
        for a in n.attribute:
            if a.name == "classlabels_int64s" and a.ints:
                return [str(v) for v in a.ints]
            if a.name == "classlabels_strings" and a.strings:
                return [v.decode("utf-8") for v in a.strings]
    return None
