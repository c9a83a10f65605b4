"""The model-randomisation sanity check: cascading re-initialisation, rank correlations, the sanity command."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import onnxai
from onnxai import sanity
from onnxai.cli import main
from onnxai.methods import METHODS
import onnx_models
from region_case import _cli_files


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (6, 7)).astype(float)  # many ties
    b = a + rng.standard_normal(a.shape)
    assert sanity.spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    assert sanity.spearman(a, -a) == pytest.approx(-1.0)
    assert sanity.spearman(np.ones((3, 3)), np.ones((3, 3))) == 1.0
    assert sanity.spearman(np.ones((3, 3)), a[:3, :3]) == 0.0


class EdgeMap:
    """A "method" that ignores the model: the gradient magnitude of the grey picture."""

    name = "edges"

    def explain(self, model, image, target=None):
        x, crop = model.prepare(image)
        grey = crop.astype(np.float64).mean(axis=2)
        gy, gx = np.gradient(grey)
        probs = model.scores(x)[0]
        t = int(np.argmax(probs)) if target in (None, "top1") else int(target)
        return onnxai.Explanation(map=np.hypot(gx, gy).astype(np.float32), target=t, label=model.label(t),
                                  score=float(probs[t]), method=self.name, image=crop)


def _noise_picture(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (16, 16, 3)).astype(np.uint8)


def test_randomise_cascades_from_the_output_with_the_same_std():
    m, p = onnx_models.conv_net(size=8, channels=16, classes=12, seed=0)
    layers = sanity.weight_layers(m)
    assert [l.node for l in layers] == ["conv", "fc"]
    one, two = sanity.randomise(m, 1, seed=3), sanity.randomise(m, 2, seed=3)
    arr = lambda model, name: onnx_array(model, name)
    np.testing.assert_array_equal(arr(one, "conv_w"), p["W"])  # only the head at step 1
    assert not np.allclose(arr(one, "fc_w"), p["F"])
    np.testing.assert_array_equal(arr(one, "fc_w"), arr(two, "fc_w"))  # cascading: same values later on
    assert not np.allclose(arr(two, "conv_w"), p["W"])
    assert np.std(arr(two, "conv_w")) == pytest.approx(np.std(p["W"]), rel=0.25)
    np.testing.assert_array_equal(arr(sanity.randomise(m, 2, seed=3), "conv_w"), arr(two, "conv_w"))  # seeded
    assert sanity.cascade_counts(50) == [0, 6, 12, 19, 25, 31, 38, 44, 50]
    assert sanity.cascade_counts(2) == [0, 1, 2]


def onnx_array(model, name):
    from onnx import numpy_helper

    return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


def test_model_independent_map_fails_the_sanity_check(conv_model):
    model = conv_model
    r = sanity.cascading_randomisation(model, _noise_picture(), EdgeMap(), target="top1")
    assert [s.randomised for s in r.steps] == [0, 1, 2]
    assert all(s.spearman == pytest.approx(1.0) for s in r.steps)
    assert not r.passed()


@pytest.mark.parametrize("name", ["occlusion", "cam", "grad-cam"])
def test_model_dependent_maps_decorrelate(name, conv_model):
    if name not in METHODS:
        pytest.skip(f"{name} is not registered")
    model = conv_model
    method = onnxai.Occlusion(window=3, stride=1, fill="black") if name == "occlusion" else onnxai.make_method(name)
    r = sanity.cascading_randomisation(model, _noise_picture(0), method, target="top1", seed=0)
    assert r.steps[0].spearman == 1.0
    assert all(abs(s.spearman) < 0.5 for s in r.steps[1:])
    assert r.passed()
    assert r.montage().width > 3 * 16


def test_cli_sanity_prints_correlations_and_draws_the_steps(tmp_path):
    model, pics, opts = _cli_files(tmp_path)
    out = tmp_path / "s"
    r = CliRunner().invoke(main, ["sanity", model, pics[0], "--method", "occlusion", "--param", "occlusion.window=4",
                                  "--out", str(out), *opts])
    assert r.exit_code == 0, r.output
    assert "spearman" in r.output and ("PASSED" in r.output or "FAILED" in r.output)
    data = json.loads((out / "pic0_sanity_occlusion.json").read_text())
    assert [s["randomised"] for s in data["steps"]] == [0, 1, 2] and data["steps"][0]["spearman"] == 1.0
    assert Image.open(out / "pic0_sanity_occlusion.png").format == "PNG"


@pytest.mark.parametrize("threshold", ["nan", "-0.1", "1.5"])
def test_cli_sanity_refuses_a_threshold_outside_0_1_before_running(tmp_path, threshold):
    model, pics, opts = _cli_files(tmp_path)
    r = CliRunner().invoke(main, ["sanity", model, pics[0], "--method", "occlusion", "--threshold", threshold,
                                  "--out", str(tmp_path / "s"), *opts])
    assert r.exit_code == 2 and "--threshold must be a number >= 0 and <= 1" in r.output
    assert not (tmp_path / "s").exists()
