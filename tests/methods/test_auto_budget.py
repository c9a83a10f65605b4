"""num_samples="auto": stop when the standard errors settle; same seed, same stop, same bits."""

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import onnxai
from onnxai.cli import main
from onnxai.errors import InputError
from onnxai.tables import Background
import onnx_models


def _grid(size=16, cell=4):
    return (np.arange(size)[:, None] // cell * (size // cell) + np.arange(size)[None, :] // cell).astype(np.int32)


def _noise_model(size=16):
    """Two classes whose logits are uniform noise, whatever the input: scores that never settle."""
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Unsqueeze", ["m", "one"], ["m2"]),
             helper.make_node("Concat", ["m2", "m2"], ["mm"], axis=1),
             helper.make_node("RandomUniformLike", ["mm"], ["logits"], low=-3.0, high=3.0)]
    g = helper.make_graph(nodes, "noise", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])],
                          initializer=[onnx.numpy_helper.from_array(np.array([1], np.int64), "one")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    pre = onnxai.Preprocess(resize=None, crop=size, mean=(0.5,) * 3, std=(0.25,) * 3)
    return onnxai.load(m, preprocess=pre, providers="cpu")


@pytest.mark.parametrize("method", [
    lambda: onnxai.LIME(num_samples="auto", surrogate="ridge", segmentation=_grid(), fill="black", seed=3, score="probabilities"),
    lambda: onnxai.KernelSHAP(num_samples="auto", segmentation=_grid(), fill="black", seed=3, score="probabilities"),
    lambda: onnxai.PermutationSHAP(num_samples="auto", segmentation=_grid(), fill="black", seed=3, score="probabilities"),
    lambda: onnxai.RISE(num_samples="auto", cells=4, seed=3, score="logits", tolerance=0.2),
])
def test_auto_stops_converged_and_is_reproducible(region_model, method):
    model, _ = region_model
    pic = onnx_models.region_picture(region=(4, 12, 4, 12))
    a = method().explain(model, pic, target="top2")
    b = method().explain(model, pic, target="top2")
    for ea, eb in zip(a, b):
        assert ea.extras["stopped"] == "converged"
        assert ea.extras["num_samples"] < ea.extras["max_samples"]
        assert ea.extras["error_ratio"] <= ea.extras["tolerance"]
        assert ea.extras["num_samples"] == eb.extras["num_samples"]
        np.testing.assert_array_equal(ea.map, eb.map)
        np.testing.assert_array_equal(ea.stderr, eb.stderr)
        # several targets: every one of them settled at the stop
        values = ea.importance if ea.importance is not None else ea.map - ea.map.mean()
        assert np.max(ea.stderr) <= ea.extras["tolerance"] * np.max(np.abs(values)) * 1.0001


def test_auto_lime_equals_a_fixed_budget_of_the_samples_it_used(region_model):
    model, _ = region_model
    pic = onnx_models.region_picture(region=(4, 12, 4, 12))
    auto = onnxai.LIME(num_samples="auto", surrogate="ridge", segmentation=_grid(), fill="black", seed=1, score="probabilities",
                       tolerance=0.05).explain(model, pic, target=1)
    n = auto.extras["num_samples"]
    fixed = onnxai.LIME(num_samples=n, surrogate="ridge", segmentation=_grid(), fill="black", seed=1, score="probabilities").explain(
        model, pic, target=1)
    np.testing.assert_allclose(auto.importance, fixed.importance, atol=1e-6)
    # a tighter tolerance needs more samples
    tighter = onnxai.LIME(num_samples="auto", surrogate="ridge", segmentation=_grid(), fill="black", seed=1, score="probabilities",
                          tolerance=0.02).explain(model, pic, target=1)
    assert tighter.extras["num_samples"] > n


def test_noise_never_settles_and_stops_at_max_samples():
    model = _noise_model()
    pic = onnx_models.region_picture()
    e = onnxai.LIME(num_samples="auto", surrogate="ridge", segmentation=_grid(), max_samples=300,
                    tolerance=0.05).explain(model, pic, target=1)
    assert e.extras["stopped"] == "max_samples" and e.extras["num_samples"] == 300
    assert e.extras["error_ratio"] > 0.05


def test_auto_table_rows_each_stop_on_their_own(table_model):
    rng = np.random.default_rng(0)
    bg = Background(rng.standard_normal((5, 4)), np.ones(5))
    X = rng.standard_normal((3, 4))
    e = onnxai.KernelSHAP(num_samples="auto", background=bg, tolerance=0.05, seed=0).explain(table_model, X)
    assert len(e.extras["num_samples"]) == 3 and set(e.extras["stopped"]) <= {"converged", "max_samples"}
    assert e.stderr.shape == e.values.shape
    lt = onnxai.LimeTabular(background=rng.standard_normal((50, 4)), num_samples="auto", tolerance=0.1).explain(
        table_model, X)
    assert len(lt.extras["num_samples"]) == 3 and all(s == "converged" for s in lt.extras["stopped"])
    assert max(lt.extras["num_samples"]) < lt.extras["max_samples"]


@pytest.mark.parametrize("kw, message", [
    (dict(tolerance=0), "tolerance must be a number > 0"),
    (dict(tolerance="x"), "tolerance must be a number > 0"),
    (dict(tolerance=float("nan")), "tolerance must be a number > 0"),
    (dict(max_samples=50), "max_samples must be an integer >= 100"),
    (dict(surrogate="tree"), "needs standard errors"),
])
def test_bad_budgets_say_what_to_do(kw, message):
    with pytest.raises(InputError, match=message):
        onnxai.LIME(num_samples="auto", **kw)
    with pytest.raises(InputError, match="whole number or 'auto'"):
        onnxai.LIME(num_samples="many")


def test_cli_samples_auto(tmp_path):
    m, _ = onnx_models.region_net()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    pic = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(onnx_models.region_picture()).save(pic)
    r = CliRunner().invoke(main, ["explain", str(path), str(pic), "--method", "lime", "--surrogate", "ridge",
                                  "--samples", "auto", "--tolerance", "0.1", "--max-samples", "2000",
                                  "--features", "16", "--segmentation", "grid", "--resize", "16", "--size", "16",
                                  "--out", str(tmp_path / "out"), "--no-progress", "--mark-unsettled"])
    assert r.exit_code == 0, r.output
    assert "samples (converged" in r.output
    r = CliRunner().invoke(main, ["explain", str(path), str(pic), "--method", "occlusion", "--samples", "auto",
                                  "--resize", "16", "--size", "16", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "deterministic" in r.output
    r = CliRunner().invoke(main, ["explain", str(path), str(pic), "--method", "lime", "--samples", "auto",
                                  "--surrogate", "ridge", "--tolerance", "-1", "--resize", "16", "--size", "16",
                                  "--out", str(tmp_path / "t")])
    assert r.exit_code != 0 and "tolerance must be a number > 0" in r.output
