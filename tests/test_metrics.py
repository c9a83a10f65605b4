"""Faithfulness metrics and the randomisation sanity check, against hand-computed values on tiny models.

region_net: class 1's logit is ``scale`` x the mean (over channels and pixels) of the normalised input
inside a known region, class 0's logit is 0, so p1 = sigmoid(logit1) can be written down in numpy.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

import onnxai
from onnxai import metrics, sanity
from onnxai.cli import main
from onnxai.methods import METHODS
import tiny

SIZE, REGION, SCALE = 16, (4, 10, 4, 10), 4.0
MEAN, STD = 0.5, 0.25


def _region_model(layout="NCHW"):
    m, mask = tiny.region_net(size=SIZE, region=REGION, layout=layout, scale=SCALE)
    pre = onnxai.Preprocess(resize=None, crop=SIZE, mean=(MEAN,) * 3, std=(STD,) * 3, layout=layout)
    return onnxai.load(m, preprocess=pre, providers="cpu"), mask


def _p1(picture_float: np.ndarray, mask: np.ndarray) -> float:
    """Hand formula: probability of class 1 for an (H, W, 3) float picture in 0..255."""
    v = (picture_float / 255.0 - MEAN) / STD
    logit = SCALE * v[mask > 0].mean()
    return float(1.0 / (1.0 + np.exp(-logit)))


def _good_map(mask, seed=1):
    """Ranks the informative region first (tiny noise breaks the ties)."""
    return mask + 0.01 * np.random.default_rng(seed).random(mask.shape).astype(np.float32)


# --------------------------------------------------------------------------- pieces


def test_auc_is_the_trapezoid_rule():
    assert metrics.auc([1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert metrics.auc([1.0, 1.0, 0.0], [0.0, 0.25, 1.0]) == pytest.approx(0.25 + 0.75 * 0.5)
    assert metrics.auc([0.2, 0.2, 0.2, 0.2]) == pytest.approx(0.2)


def test_step_counts_and_ranks():
    np.testing.assert_array_equal(metrics.step_counts(10, 3), [0, 3, 6, 9, 10])
    np.testing.assert_array_equal(metrics.step_counts(9, 3), [0, 3, 6, 9])
    ranks = metrics.pixel_ranks(np.array([[0.1, 0.9], [0.5, 0.5]]))
    np.testing.assert_array_equal(ranks, [[3, 0], [1, 2]])  # ties in raster order


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (6, 7)).astype(float)  # many ties
    b = a + rng.standard_normal(a.shape)
    assert sanity.spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    assert sanity.spearman(a, -a) == pytest.approx(-1.0)
    assert sanity.spearman(np.ones((3, 3)), np.ones((3, 3))) == 1.0
    assert sanity.spearman(np.ones((3, 3)), a[:3, :3]) == 0.0


# --------------------------------------------------------------------------- deletion / insertion


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_deletion_and_insertion_equal_hand_computed_curves(layout):
    model, mask = _region_model(layout)
    pic = tiny.region_picture(SIZE, REGION)
    map_ = np.random.default_rng(3).random((SIZE, SIZE)).astype(np.float32)
    step, sigma = 20, 2.0
    order = np.argsort(-map_.ravel(), kind="stable")
    counts = list(range(0, SIZE * SIZE, step)) + [SIZE * SIZE]
    blurred = np.asarray(Image.fromarray(pic).filter(ImageFilter.GaussianBlur(radius=sigma)), np.float64)
    want_del, want_ins = [], []
    for c in counts:
        gone = np.zeros(SIZE * SIZE, bool)
        gone[order[:c]] = True
        gone = gone.reshape(SIZE, SIZE)
        deleted = np.where(gone[..., None], 0.0, pic.astype(np.float64))  # black substrate
        inserted = np.where(gone[..., None], pic.astype(np.float64), blurred)
        want_del.append(_p1(deleted, mask))
        want_ins.append(_p1(inserted, mask))
    x = np.array(counts) / (SIZE * SIZE)
    d = metrics.deletion(model, pic, map_, target=1, step=step, substrate="black")
    i = metrics.insertion(model, pic, map_, target=1, step=step, blur_sigma=sigma, chunk_size=5)
    np.testing.assert_allclose(d.fractions, x)
    np.testing.assert_allclose(d.scores, want_del, atol=1e-5)
    np.testing.assert_allclose(i.scores, want_ins, atol=1e-5)
    trapz = lambda y: float(np.sum(np.diff(x) * (np.array(y)[1:] + np.array(y)[:-1]) / 2))
    assert d.auc == pytest.approx(trapz(want_del), abs=1e-5)
    assert i.auc == pytest.approx(trapz(want_ins), abs=1e-5)


def test_informative_region_first_beats_reverse_and_random():
    model, mask = _region_model()
    pic = tiny.region_picture(SIZE, REGION)
    good = _good_map(mask)
    maps = {"good": good, "reverse": -good, "random": metrics.random_map(mask.shape, seed=0)}
    dele = {k: metrics.deletion(model, pic, m, target=1, step=8).auc for k, m in maps.items()}
    ins = {k: metrics.insertion(model, pic, m, target=1, step=8).auc for k, m in maps.items()}
    assert dele["good"] < dele["random"] < dele["reverse"]
    assert ins["good"] > ins["random"] and ins["good"] > ins["reverse"]


def test_coarse_maps_are_resized_and_default_step_is_one_row():
    model, mask = _region_model()
    pic = tiny.region_picture(SIZE, REGION)
    coarse = np.zeros((4, 4), np.float32)
    coarse[1:3, 1:3] = 1.0
    d = metrics.deletion(model, pic, coarse, target=1)
    assert d.scores.shape == (SIZE + 1,)  # SIZE*SIZE pixels, SIZE per step
    assert d.auc < metrics.deletion(model, pic, -coarse, target=1).auc


# --------------------------------------------------------------------------- average drop / increase


def test_average_drop_and_increase_equal_the_formula():
    model, mask = _region_model()
    pics = [tiny.region_picture(SIZE, REGION, seed=s) for s in range(3)]
    rng = np.random.default_rng(7)
    maps = [_good_map(mask), 1.0 - mask + 0.2 * rng.random(mask.shape), rng.standard_normal(mask.shape)]
    targets = [1, 1, 0]  # class 0 gains when the bright region is darkened: an increase in confidence
    got = [metrics.confidence(model, p, m, target=t) for p, m, t in zip(pics, maps, targets)]
    drops, incs, drops50, incs50 = [], [], [], []
    for p, m, t in zip(pics, maps, targets):
        m01 = (m - m.min()) / (m.max() - m.min())
        top = np.zeros(m.size, bool)
        top[np.argsort(-m.ravel(), kind="stable")[: m.size // 2]] = True
        m50 = np.where(top.reshape(m.shape), m01, 0.0)
        prob = (lambda q: q) if t == 1 else (lambda q: 1.0 - q)
        y = prob(_p1(p.astype(np.float64), mask))
        o = prob(_p1(p * m01[..., None], mask))
        o50 = prob(_p1(p * m50[..., None], mask))
        drops.append(100 * max(0.0, y - o) / y)
        incs.append(100.0 * (y < o))
        drops50.append(100 * max(0.0, y - o50) / y)
        incs50.append(100.0 * (y < o50))
    for c, d, i, d5, i5 in zip(got, drops, incs, drops50, incs50):
        assert c.drop == pytest.approx(d, abs=1e-3)
        assert c.increase == i and c.increase50 == i5
        assert c.drop50 == pytest.approx(d5, abs=1e-3)
    assert metrics.average_drop(got) == pytest.approx(np.mean(drops), abs=1e-3)
    assert metrics.increase_in_confidence(got) == pytest.approx(np.mean(incs))
    assert 0 < metrics.increase_in_confidence(got) < 100  # the case exercises both outcomes
    assert got[0].drop < got[1].drop  # the informative map keeps the confidence


def test_evaluate_gathers_every_method_and_the_random_row(tmp_path):
    model, mask = _region_model()
    pics = [tiny.region_picture(SIZE, REGION, seed=s) for s in range(2)]
    ev = metrics.evaluate(model, pics, {"occlusion": onnxai.Occlusion(window=4, stride=2, fill="black")}, step=16)
    summary = ev.summary()
    assert list(summary) == ["occlusion", metrics.RANDOM]
    assert summary["occlusion"]["n"] == 2
    assert summary["occlusion"]["deletion"][0] < summary[metrics.RANDOM]["deletion"][0]
    assert "random" in ev.table() and "occlusion" in ev.table()
    csv_path, json_path = ev.save(tmp_path / "ev")
    assert len(csv_path.read_text().strip().splitlines()) == 1 + 4
    data = json.loads(json_path.read_text())
    assert data["summary"]["random"]["n"] == 2 and len(data["scores"][0]["deletion_curve"]["scores"]) == 17
    with pytest.raises(onnxai.InputError, match="exists"):
        ev.save(tmp_path / "ev")


# --------------------------------------------------------------------------- sanity check


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


def _conv_model(seed=0):
    m, _ = tiny.conv_net(size=16, channels=8, classes=3, seed=seed)
    pre = onnxai.Preprocess(resize=None, crop=16, mean=(MEAN,) * 3, std=(STD,) * 3)
    return onnxai.load(m, preprocess=pre, providers="cpu")


def _noise_picture(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (16, 16, 3)).astype(np.uint8)


def test_randomise_cascades_from_the_output_with_the_same_std():
    m, p = tiny.conv_net(size=8, channels=16, classes=12, seed=0)
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


def test_model_independent_map_fails_the_sanity_check():
    model = _conv_model()
    r = sanity.cascading_randomisation(model, _noise_picture(), EdgeMap(), target="top1")
    assert [s.randomised for s in r.steps] == [0, 1, 2]
    assert all(s.spearman == pytest.approx(1.0) for s in r.steps)
    assert not r.passed()


@pytest.mark.parametrize("name", ["occlusion", "cam", "grad-cam"])
def test_model_dependent_maps_decorrelate(name):
    if name not in METHODS:
        pytest.skip(f"{name} is not registered")
    model = _conv_model(seed=0)
    method = onnxai.Occlusion(window=3, stride=1, fill="black") if name == "occlusion" else onnxai.make_method(name)
    r = sanity.cascading_randomisation(model, _noise_picture(0), method, target="top1", seed=0)
    assert r.steps[0].spearman == 1.0
    assert all(abs(s.spearman) < 0.5 for s in r.steps[1:])
    assert r.passed()
    assert r.montage().width > 3 * 16


# --------------------------------------------------------------------------- command line


def _cli_files(tmp_path):
    import onnx

    m, _ = tiny.region_net(size=32, region=(8, 20, 8, 20))
    onnx.save(m, tmp_path / "region.onnx")
    pics = []
    for s in range(2):
        path = tmp_path / f"pic{s}.png"
        Image.fromarray(tiny.region_picture(32, (8, 20, 8, 20), seed=s)).save(path)
        pics.append(str(path))
    opts = ["--providers", "cpu", "--resize", "32", "--size", "32", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"]
    return str(tmp_path / "region.onnx"), pics, opts


def test_cli_evaluate_writes_table_csv_json_and_curves(tmp_path):
    model, pics, opts = _cli_files(tmp_path)
    out = tmp_path / "ev"
    args = ["evaluate", model, *pics, "--methods", "occlusion,lime", "--param", "lime.num_samples=64",
            "--param", "occlusion.window=4", "--step", "64", "--out", str(out), *opts]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    for name in ("occlusion", "lime", "random"):
        assert name in r.output
    assert (out / "evaluation.csv").exists() and (out / "evaluation.json").exists()
    curves = Image.open(out / "evaluation_curves.png")
    assert curves.format == "PNG" and curves.width > curves.height
    r2 = CliRunner().invoke(main, args)  # refuses to overwrite
    assert r2.exit_code == 2 and "exists" in r2.output
    bad = CliRunner().invoke(main, ["evaluate", model, pics[0], "--methods", "occlusion", "--param", "nope", *opts])
    assert bad.exit_code == 2 and "METHOD.KEY=VALUE" in bad.output


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


def test_default_deletion_substrate_is_model_space_zero():
    model, _ = _region_model("NCHW")
    pic = tiny.region_picture(SIZE, REGION)
    map_ = np.random.default_rng(0).random((SIZE, SIZE)).astype(np.float32)
    d = metrics.deletion(model, pic, map_, target=1, step=SIZE * SIZE // 4)
    x, _ = model.prepare(pic)
    assert d.scores[0] == pytest.approx(float(model.scores(x)[0, 1]), abs=1e-6)
    assert d.scores[-1] == pytest.approx(float(model.scores(np.zeros_like(x))[0, 1]), abs=1e-6)
    black = metrics.deletion(model, pic, map_, target=1, step=SIZE * SIZE // 4, substrate="black")
    assert black.scores[-1] != pytest.approx(d.scores[-1], abs=1e-3)  # black is another picture here
