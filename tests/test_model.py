"""onnxai.model: scores/logits against numpy references on hand-built graphs, the fixed-batch rewrite
and its fallback, chunking, the output choice rule, activations and tails, and provider choice."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import onnx_models
from onnxai import _log
from onnxai import graph_ends, runtime
from onnxai.errors import InputError, LayerError, ModelError, OutputError, ProviderError
from onnxai.model import Model
from onnxai.preprocess import Preprocess


def _x(n, p, size=8, seed=1):
    rng = np.random.default_rng(seed)
    shape = (n, size, size, 3) if p["layout"] == "NHWC" else (n, 3, size, size)
    return rng.standard_normal(shape).astype(np.float32)


def _count_runs(monkeypatch, session):
    """Record the batch size of every session.run on ``session``."""
    sizes = []
    real = session.run

    def run(names, feeds, *a, **k):
        sizes.append(next(iter(feeds.values())).shape[0])
        return real(names, feeds, *a, **k)

    monkeypatch.setattr(session, "run", run)
    return sizes


CASES = [
    dict(softmax=s, layout=l, batch=b, head=h)
    for s in (False, True)
    for l in ("NCHW", "NHWC")
    for b in (None, 1)
    for h in ("gemm", "matmul")
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_scores_and_logits_match_numpy(case):
    m, p = onnx_models.conv_net(**case)
    model = Model(m, providers="cpu")
    x = _x(7, p)
    _, logits = onnx_models.conv_forward(x, p)

    assert model.input.dynamic_batch is True
    assert model.input.shape[0] is None
    assert model.input.layout == case["layout"]
    assert model.fixed_batch is None
    assert model.num_classes == 5
    assert model.outputs_probabilities is case["softmax"]

    probs = model.scores(x)
    assert probs.dtype == np.float32 and probs.shape == (7, 5)
    np.testing.assert_allclose(probs, onnx_models.np_softmax(logits), atol=1e-5, rtol=0)
    # logits: the Softmax node's input for the softmax model, the raw output otherwise
    np.testing.assert_allclose(model.scores(x, kind="logits"), logits, atol=1e-4, rtol=1e-5)
    raw = model.scores(x, kind="raw")
    np.testing.assert_allclose(raw, onnx_models.np_softmax(logits) if case["softmax"] else logits, atol=1e-4, rtol=1e-5)
    # a batch of 7 equals 7 single runs (also for the fixed-batch-1 file made dynamic)
    single = np.concatenate([model.scores(x[i:i + 1]) for i in range(7)])
    np.testing.assert_allclose(probs, single, atol=1e-6, rtol=0)


def test_fixed_batch_one_is_rewritten_to_dynamic(monkeypatch):
    m, p = onnx_models.conv_net(batch=1)
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    model = Model(m, providers="cpu", batch_size=16)
    assert model.input.dynamic_batch and model.fixed_batch is None and model.batch_size == 16
    sizes = _count_runs(monkeypatch, model.session)
    x = _x(7, p)
    model.scores(x)
    assert sizes == [7]  # one run for the whole batch: really batch-dynamic, not one at a time
    # the original proto handed in is untouched
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_chunking_equals_one_big_run(monkeypatch):
    m, p = onnx_models.conv_net(softmax=True)
    x = _x(5, p)
    big = Model(m, providers="cpu", batch_size=64)
    small = Model(m, providers="cpu", batch_size=2)
    sizes = _count_runs(monkeypatch, small.session)
    np.testing.assert_allclose(small.scores(x), big.scores(x), atol=1e-7, rtol=0)
    assert sizes == [2, 2, 1]
    np.testing.assert_allclose(small.scores(x, kind="logits"), big.scores(x, kind="logits"), atol=1e-6, rtol=0)
    np.testing.assert_allclose(small.scores(x, kind="logits"), onnx_models.conv_forward(x, p)[1], atol=1e-4, rtol=1e-5)


def test_unrewritable_fixed_batch_falls_back_to_one_at_a_time(monkeypatch, capfd):
    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    m, p = onnx_models.reshape_head_net((1, -1))
    same, reason = graph_ends.make_batch_dynamic(m)
    assert same is m and "hard-codes the batch size 1" in reason and "'flatten'" in reason

    model = Model(m, providers="cpu", batch_size=32)
    err = capfd.readouterr().err
    assert "cannot be made batch-dynamic safely" in err and "hard-codes the batch size 1" in err
    assert model.input.dynamic_batch is False
    assert model.fixed_batch == 1 and model.batch_size == 1
    sizes = _count_runs(monkeypatch, model.session)
    x = _x(5, p)
    logits = onnx_models.conv_forward(x, p)[1]
    np.testing.assert_allclose(model.scores(x), onnx_models.np_softmax(logits), atol=1e-5, rtol=0)
    assert sizes == [1] * 5
    acts, probs = model.activations(x, "act")
    np.testing.assert_allclose(acts["act"], onnx_models.conv_forward(x, p)[0], atol=1e-4, rtol=1e-5)


def test_rewrite_that_changes_results_is_rejected(monkeypatch, capfd):
    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    m, p = onnx_models.batch_mixing_net()
    _, reason = graph_ends.make_batch_dynamic(m)
    assert reason is None  # structurally fine: only the numerical check can catch it
    model = Model(m, providers="cpu")
    assert "a batch of 2 gave different results than two single runs" in capfd.readouterr().err
    assert model.fixed_batch == 1 and not model.input.dynamic_batch
    x = _x(5, p)
    logits = onnx_models.conv_forward(x, p)[1]  # per sample, 2*l - mean(l) == l
    np.testing.assert_allclose(model.scores(x, kind="logits"), logits, atol=1e-4, rtol=1e-5)


def test_a_dynamic_batch_model_that_mixes_its_batch_runs_one_input_at_a_time(monkeypatch, capfd):
    """Declared batch-dynamic, but its output for a batch depends on the other inputs (here 2 l - the
    batch's mean l): before, every batch of perturbations was scored against its neighbours."""
    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    m, p = onnx_models.batch_mixing_net(batch=None)
    model = Model(m, providers="cpu", preprocess=Preprocess(crop=8))
    assert "it mixes the inputs of a batch" in capfd.readouterr().err
    assert model.batch_size == 1 and model.fixed_batch == 1
    x = _x(5, p)
    np.testing.assert_allclose(model.scores(x, kind="logits"), onnx_models.conv_forward(x, p)[1], atol=1e-4, rtol=1e-5)
    plain = Model(onnx_models.conv_net(batch=None)[0], providers="cpu", preprocess=Preprocess(crop=8))
    assert plain.batch_size == 32 and plain.fixed_batch is None  # a model that does not mix keeps its batches


def test_a_dynamic_batch_model_whose_batch_fails_runs_one_input_at_a_time(monkeypatch, capfd):
    """Declared batch-dynamic, but a Reshape inside fixes the batch to 1 (a torch view(1, -1) exported with
    dynamic axes): a batch of 2 fails. Before, every explanation failed at its first batch."""
    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    m, p = onnx_models.reshape_head_net((1, 4), batch=None)
    model = Model(m, providers="cpu", preprocess=Preprocess(crop=8))
    err = capfd.readouterr().err
    assert "declares a dynamic batch but a batch of 2 fails" in err and "one at a time" in err, err
    assert model.batch_size == 1
    x = _x(3, p)
    np.testing.assert_allclose(model.scores(x, kind="logits"), onnx_models.conv_forward(x, p)[1], atol=1e-4, rtol=1e-5)


def test_fixed_batch_above_one_pads_the_last_chunk():
    m, p = onnx_models.conv_net(batch=3, softmax=True)
    model = Model(m, providers="cpu")
    assert model.fixed_batch == 3 and model.batch_size == 3 and not model.input.dynamic_batch
    x = _x(5, p)
    act, logits = onnx_models.conv_forward(x, p)
    np.testing.assert_allclose(model.scores(x), onnx_models.np_softmax(logits), atol=1e-5, rtol=0)
    np.testing.assert_allclose(model.scores(x, kind="logits"), logits, atol=1e-4, rtol=1e-5)
    acts, probs = model.activations(x, "act")
    np.testing.assert_allclose(acts["act"], act, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(probs, onnx_models.np_softmax(logits), atol=1e-5, rtol=0)


@pytest.mark.parametrize("batch", [None, 3])
def test_run_batch_pads_and_splits_for_a_fixed_batch(batch):
    m, p = onnx_models.conv_net(batch=batch, softmax=True)
    model = Model(m, providers="cpu")
    for n in (1, 2, 5):
        x = _x(n, p)
        logits = onnx_models.conv_forward(x, p)[1]
        np.testing.assert_allclose(model.run_batch(x), onnx_models.np_softmax(logits), atol=1e-5, rtol=0)
        np.testing.assert_allclose(model.run_batch(x, kind="logits"), logits, atol=1e-4, rtol=1e-5)


# ----------------------------------------------------------------------------- output choice


def test_output_rule_skips_int_and_spatial_outputs():
    m, p = onnx_models.conv_net()
    m2 = onnx_models.with_extra_outputs(m, [
        ("top1", TensorProto.INT64, [None], helper.make_node("ArgMax", ["logits"], ["top1"], axis=1, keepdims=0)),
        ("act", TensorProto.FLOAT, [None, 4, 8, 8]),
    ])
    assert [o.name for o in m2.graph.output] == ["top1", "act", "logits"]
    model = Model(m2, providers="cpu")
    assert model.output == "logits"
    x = _x(3, p)
    np.testing.assert_allclose(model.scores(x, kind="raw"), onnx_models.conv_forward(x, p)[1], atol=1e-4, rtol=1e-5)


def test_output_rule_prefers_a_scores_name_over_an_earlier_feature_output_and_output_by_name():
    m, p = onnx_models.conv_net()
    m2 = onnx_models.with_extra_outputs(m, [("flat", TensorProto.FLOAT, [None, 4])])
    x = _x(3, p)
    act, logits = onnx_models.conv_forward(x, p)
    chosen = Model(m2, providers="cpu")  # features first, logits second: the logits, and why
    assert chosen.output == "logits" and chosen.num_classes == 5
    assert "'logits' is named like logits" in chosen.output_choice and "'flat'" in chosen.output_choice
    first = Model(m2, providers="cpu", output="flat")
    assert first.output == "flat" and first.num_classes == 4
    np.testing.assert_allclose(first.scores(x, kind="raw"), act.mean(axis=(2, 3)), atol=1e-5, rtol=1e-5)
    named = Model(m2, providers="cpu", output="logits")
    assert named.output == "logits" and named.num_classes == 5
    np.testing.assert_allclose(named.scores(x, kind="raw"), logits, atol=1e-4, rtol=1e-5)
    with pytest.raises(LayerError) as e:
        Model(m2, providers="cpu", output="logit")
    assert str(e.value) == "no output named 'logit'; the outputs are ['flat', 'logits']"


def test_output_rule_accepts_a_1x1_map_and_refuses_when_nothing_fits():
    m, p = onnx_models.conv_net()
    pooled_only = onnx_models.with_extra_outputs(m, [("pool", TensorProto.FLOAT, [None, 4, 1, 1])])
    del pooled_only.graph.output[1:]
    model = Model(pooled_only, providers="cpu")
    x = _x(2, p)
    assert model.output == "pool" and model.num_classes == 4
    np.testing.assert_allclose(model.scores(x, kind="raw"), onnx_models.conv_forward(x, p)[0].mean(axis=(2, 3)), atol=1e-5)

    spatial_only = onnx_models.with_extra_outputs(m, [("act", TensorProto.FLOAT, [None, 4, 8, 8])])
    del spatial_only.graph.output[1:]
    with pytest.raises(ModelError, match=r"cannot tell which output holds class scores \(outputs: act tensor\(float\)"):
        Model(spatial_only, providers="cpu")


# ----------------------------------------------------------------------------- inner layers


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("softmax", [False, True])
def test_activations_and_tail_match_numpy(layout, softmax):
    m, p = onnx_models.conv_net(layout=layout, softmax=softmax, batch=1)
    model = Model(m, providers="cpu", batch_size=2)
    x = _x(5, p)
    act, logits = onnx_models.conv_forward(x, p)
    acts, probs = model.activations(x, ["act", "pool"])
    assert set(acts) == {"act", "pool"}
    np.testing.assert_allclose(acts["act"], act, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(acts["pool"][:, :, 0, 0], act.mean(axis=(2, 3)), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(probs, onnx_models.np_softmax(logits), atol=1e-5, rtol=0)
    tail = model.tail("act")
    assert tail.output == "logits"  # the softmax input for the softmax model
    np.testing.assert_allclose(tail(acts["act"]), logits, atol=1e-4, rtol=1e-5)
    # the tail is a function of its input: doubling the activations doubles the pooled part
    np.testing.assert_allclose(tail(2 * acts["act"]), 2 * logits - p["c"], atol=1e-4, rtol=1e-5)
    with pytest.raises(LayerError, match="no tensor named 'akt'.*close names: act"):
        model.activations(x, "akt")


def test_activations_when_shape_inference_knows_nothing():
    m, p = onnx_models.contrib_gelu_net()
    model = Model(m, providers="cpu")
    x = _x(3, p)
    act, logits = onnx_models.conv_forward_gelu(x, p)
    acts, probs = model.activations(x, "act")
    np.testing.assert_allclose(acts["act"], act, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(probs, onnx_models.np_softmax(logits), atol=1e-5, rtol=0)


def test_check_batch_rejects_wrong_shapes_and_converts_dtype():
    m, p = onnx_models.conv_net()
    model = Model(m, providers="cpu")
    with pytest.raises(InputError) as e:
        model.scores(np.zeros((2, 3, 9, 8), np.float32))
    assert str(e.value) == ("the model expects input input: ?x3x8x8 float32 (NCHW, dynamic batch); "
                            "got an array of shape (2, 3, 9, 8)")
    with pytest.raises(InputError, match=r"got an array of shape \(3, 8, 8\)"):
        model.scores(np.zeros((3, 8, 8), np.float32))
    x = _x(2, p)
    np.testing.assert_allclose(model.scores(x.astype(np.float64)), model.scores(x), atol=1e-7)


def test_nan_scores_raise_output_error():
    m, p = onnx_models.nan_net()
    model = Model(m, providers="cpu")
    with pytest.raises(OutputError, match=r"the model produced NaN or infinite scores for 3 of 3 inputs"):
        model.scores(_x(3, p))


def test_tabular_model_is_not_an_image():
    m, p = onnx_models.tabular_net()
    model = Model(m, providers="cpu")
    assert model.input.layout is None and not model.input.is_image
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_allclose(model.scores(x, kind="logits"), x @ p["W"] + p["b"], atol=1e-5)
    with pytest.raises(InputError) as e:
        model.predict(np.zeros((8, 8, 3), np.uint8))
    assert str(e.value).startswith(
        "this command needs an image model, but the input is x: ?x4 float32 (not an image, dynamic batch)")


def test_predict_on_arrays_labels_and_class_index():
    m, p = onnx_models.conv_net(size=8)
    labels = ["ant", "bee", "cat", "dog", "eel"]
    spec = Preprocess(resize=None, crop=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    model = Model(m, providers="cpu", labels=labels, preprocess=spec)
    assert model.preprocess is spec and model.preprocess_source == "given"
    img = np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    x = ((img / 255.0 - 0.5) / 0.25).transpose(2, 0, 1)[None].astype(np.float32)
    want = onnx_models.np_softmax(onnx_models.conv_forward(x, p)[1])[0]
    preds = model.predict(img, top=3)[0]
    order = np.argsort(-want)[:3]
    assert [q.index for q in preds] == list(order)
    assert [q.label for q in preds] == [labels[i] for i in order]
    np.testing.assert_allclose([q.probability for q in preds], want[order], atol=1e-5)
    assert model.class_index("Cat") == 2 and model.class_index("4") == 4
    with pytest.raises(InputError, match="unknown class 'bea'; did you mean 'bee'"):
        model.class_index("bea")
    with pytest.raises(InputError, match=r"class index 5 is out of range: the model has 5 classes \(0..4\)"):
        model.class_index(5)
    with pytest.raises(InputError, match="3 labels were given but the model scores 5 classes"):
        Model(m, providers="cpu", labels=["a", "b", "c"])


# ----------------------------------------------------------------------------- providers


def test_providers_cpu():
    m, _ = onnx_models.conv_net()
    model = Model(m, providers="cpu")
    assert model.provider == "CPUExecutionProvider"
    assert model.session.get_providers() == ["CPUExecutionProvider"]


def _cuda_really_works() -> bool:
    ok, _ = runtime._cuda_usable(onnx_models.conv_net()[0].SerializeToString(), runtime.session_options())
    return ok


def test_providers_auto_notes_once_without_onnxruntime_noise(monkeypatch, capfd):
    if _cuda_really_works():
        pytest.skip("CUDA works on this machine: auto picks CUDA, the CPU fallback note is not shown")
    monkeypatch.setattr(runtime, "_cuda_verdict", None)  # probe CUDA again, inside this test
    monkeypatch.setattr(runtime, "gpu_driver_present", lambda: True)  # a driver, but CUDA does not start
    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    m, _ = onnx_models.conv_net()
    capfd.readouterr()
    first = Model(m, providers="auto", preprocess=Preprocess(crop=8))  # given: no note of a guessed spec
    out1 = capfd.readouterr()
    assert first.provider == "CPUExecutionProvider"
    lines = out1.err.splitlines()
    assert len(lines) == 1, out1.err
    assert lines[0].startswith("onnxai: running on the CPU: a GPU driver is present but CUDA did not start (")
    assert "\x1b[" not in out1.err and "[E:onnxruntime" not in out1.err and "[W:onnxruntime" not in out1.err
    assert out1.out == ""
    second = Model(m, providers="auto", preprocess=Preprocess(crop=8))
    out2 = capfd.readouterr()
    assert second.provider == "CPUExecutionProvider"
    assert out2.err == "" and out2.out == ""


def test_providers_auto_says_nothing_on_a_machine_without_a_gpu_driver(monkeypatch, capfd):
    monkeypatch.setattr(runtime, "_cuda_verdict", None)
    monkeypatch.setattr(runtime, "gpu_driver_present", lambda: False)
    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    capfd.readouterr()
    model = Model(onnx_models.conv_net()[0], providers="auto", preprocess=Preprocess(crop=8))
    out = capfd.readouterr()
    assert model.provider == "CPUExecutionProvider" and out.err == "" and out.out == ""


def test_providers_cuda_without_cuda_says_what_to_do(capfd):
    if _cuda_really_works():
        pytest.skip("CUDA works on this machine")
    m, _ = onnx_models.conv_net()
    with pytest.raises(ProviderError) as e:
        Model(m, providers="cuda")
    msg = str(e.value)
    assert msg.startswith("--providers cuda was asked for but CUDA cannot be used here: ")
    assert "--providers cpu" in msg and "pip install" in msg
    assert "\x1b[" not in capfd.readouterr().err


def test_explicit_provider_list_and_unknown_provider():
    m, _ = onnx_models.conv_net()
    assert Model(m, providers=["CPUExecutionProvider"]).provider == "CPUExecutionProvider"
    with pytest.raises(ProviderError, match="provider 'NopeExecutionProvider' is not in this onnxruntime build"):
        Model(m, providers="NopeExecutionProvider")


# --------------------------------------------------------------------------- integer inputs


def test_uint8_input_without_metadata_takes_raw_pixels():
    """The default ImageNet normalisation cast to uint8 wrapped to {0, 1, 254, 255}: an integer input
    without metadata takes the raw pixels, and predict reports what the model gives on them."""
    m = onnx_models.uint8_net(size=8)
    model = Model(m, providers="cpu")
    assert model.preprocess.scale == 1.0 and model.preprocess.mean == (0.0,) * 3 and model.preprocess.std == (1.0,) * 3
    assert "raw pixels" in model.preprocess_source
    pic = onnx_models.cam_picture(8, seed=3)
    x, crop = model.prepare(pic)
    assert x.dtype == np.uint8
    np.testing.assert_array_equal(x[0], crop.transpose(2, 0, 1))
    raw = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    want = np.exp(raw - raw.max()) / np.exp(raw - raw.max()).sum()
    got = model.predict(pic, top=3)
    assert got[0][0].probability == pytest.approx(float(want.max()), rel=1e-5)


def test_a_normalisation_an_integer_input_cannot_hold_is_an_error():
    m = onnx_models.uint8_net(size=8)
    with pytest.raises(InputError, match="uint8 cannot hold.*--scale 1 --mean 0 --std 1"):
        Model(m, providers="cpu", preprocess={"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
                                              "scale": 1 / 255})
    # whole numbers in range are fine: e.g. pixels - 0 with scale 1 and std 1, or a BGR order
    assert Model(m, providers="cpu", preprocess={"channels": "BGR"}).preprocess.channels == "BGR"


def test_labels_as_a_json_object_by_class_index_and_bad_label_metadata(tmp_path, capsys):
    from onnxai.classes import read_labels

    obj = tmp_path / "id2label.json"  # a transformers config's id2label: read by index, not as the keys
    obj.write_text(json.dumps({"1": "dog", "0": "cat"}))
    assert read_labels(obj) == ["cat", "dog"]
    gap = tmp_path / "gap.json"
    gap.write_text(json.dumps({"0": "cat", "2": "dog"}))
    with pytest.raises(InputError, match="needs the class indices 0..K-1 as its keys"):
        read_labels(gap)
    m, _ = onnx_models.conv_net(classes=3)
    m.metadata_props.add(key="onnxai.labels", value=json.dumps({"0": "a", "1": "b", "2": "c"}))
    assert Model(m, providers="cpu").labels == ["a", "b", "c"]
    m, _ = onnx_models.conv_net(classes=3)
    m.metadata_props.add(key="onnxai.labels", value=json.dumps("abc"))  # was read as the letters a, b, c
    capsys.readouterr()
    assert Model(m, providers="cpu").labels is None
    assert "ignoring the model's onnxai.labels metadata" in capsys.readouterr().err


def test_a_guessed_preprocessing_is_said_once(monkeypatch, capfd):
    """Without metadata the normalisation is a guess (ImageNet's, or read from the graph): one note says
    which; none when the spec is given, in the metadata, or its mean/std/scale are set by the caller."""
    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    m, _ = onnx_models.conv_net()
    capfd.readouterr()
    Model(m, providers="cpu", preprocess={"resize": 0, "crop": 8})
    Model(m, providers="cpu", preprocess={"resize": 0, "crop": 8})
    err = capfd.readouterr().err
    assert err.count("no preprocessing metadata; the default is used: ImageNet mean/std") == 1, err
    Model(m, providers="cpu", preprocess={"resize": 0, "crop": 8, "mean": (0, 0, 0), "std": (1, 1, 1)})
    Model(m, providers="cpu", preprocess=Preprocess(crop=8))
    monkeypatch.setattr(_log, "_said", set())
    with_meta = onnx_models.conv_net()[0]
    with_meta.metadata_props.add(key="onnxai.preprocess", value=Preprocess(crop=8).to_json())
    Model(with_meta, providers="cpu")
    assert capfd.readouterr().err == ""
