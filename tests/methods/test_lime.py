"""LIME: agreement with the lime package on the same masks, region recovery, determinism, outputs."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import onnxai
from onnxai import kernels
from onnxai.cli import main
from onnxai.methods.superpixels import grid_cells
import onnx_models

REGION = (4, 12, 4, 12)  # aligned with the 4-pixel grid cells


def _blocks(size=16, cell=4):
    return (np.arange(size)[:, None] // cell * (size // cell) + np.arange(size)[None, :] // cell).astype(np.int32)


class _FixedDraws:
    """Stands in for lime's RandomState so that lime draws exactly our masks."""

    def __init__(self, masks):
        self.masks = masks

    def randint(self, low, high=None, size=None):
        assert size == self.masks.size, "lime asked for a different number of draws"
        return self.masks.reshape(-1).astype(np.int64).copy()


def test_ridge_agrees_with_lime_package_on_the_same_masks():
    lime_image = pytest.importorskip("lime.lime_image")
    model, _ = onnx_models.region_model(region=REGION)
    pic = onnx_models.region_picture()
    segments = _blocks()
    ours = onnxai.LIME(num_samples=300, segmentation=segments, surrogate="ridge", fill="black", seed=7)
    e = ours.explain(model, pic, target=1)
    masks, _ = ours.sample_masks(16)

    def classifier_fn(images):  # lime composites in picture space; we score through the same model
        batch = np.concatenate([model.preprocess.normalise(im.astype(np.uint8)) for im in images])
        return model.scores(batch)

    explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=0)
    explainer.random_state = _FixedDraws(masks)
    res = explainer.explain_instance(pic, classifier_fn, labels=(1,), top_labels=None, hide_color=0,
                                     num_samples=300, batch_size=64, segmentation_fn=lambda im: segments,
                                     random_seed=1)
    theirs = np.zeros(16)
    for feature, coef in res.local_exp[1]:
        theirs[feature] = coef
    np.testing.assert_allclose(e.importance, theirs, atol=1e-6)
    assert abs(e.extras["intercept"] - res.intercept[1]) < 1e-6
    assert abs(e.extras["r2"] - res.score) < 1e-6


@pytest.mark.parametrize("surrogate", ["ridge", "linear", "tree"])
def test_map_mass_inside_the_informative_region(surrogate):
    model, mask = onnx_models.region_model(region=REGION)
    e = onnxai.LIME(num_samples=400, segmentation="grid", num_features=16, surrogate=surrogate, fill="black",
                    upsample="nearest", seed=0).explain(model, onnx_models.region_picture(region=REGION))
    assert e.target == 1
    pos = np.clip(e.map, 0, None)
    assert pos[mask > 0].sum() / pos.sum() > 0.8
    assert e.extras["r2"] > 0.5


def test_same_seed_same_bits_and_other_seed_differs():
    model, _ = onnx_models.region_model(region=REGION)
    pic = onnx_models.region_picture()
    run = lambda seed: onnxai.LIME(num_samples=200, segmentation="grid", num_features=16, surrogate="ridge",
                                   seed=seed).explain(model, pic)
    a, b, c = run(3), run(3), run(4)
    assert np.array_equal(a.map, b.map)
    assert not np.array_equal(a.map, c.map)


def test_several_targets_from_one_run_equal_single_runs():
    model, _ = onnx_models.region_model(region=REGION)
    pic = onnx_models.region_picture()
    lime = onnxai.LIME(num_samples=150, segmentation="grid", num_features=16, surrogate="ridge", seed=1)
    both = lime.explain(model, pic, target="top2")
    assert [e.target for e in both] == [1, 0]
    for e in both:
        single = lime.explain(model, pic, target=e.target)
        assert np.array_equal(single.map, e.map)
    # for two classes with probabilities summing to 1, the class-0 coefficients mirror class 1's
    np.testing.assert_allclose(both[0].importance, -both[1].importance, atol=1e-5)


def test_grid_upsampling_options():
    model, _ = onnx_models.region_model(region=REGION)
    pic = onnx_models.region_picture()
    kw = dict(num_samples=100, segmentation="grid", num_features=16, surrogate="ridge", seed=0)
    coarse = onnxai.LIME(upsample="none", **kw).explain(model, pic)
    smooth = onnxai.LIME(upsample="auto", **kw).explain(model, pic)
    painted = onnxai.LIME(upsample="nearest", **kw).explain(model, pic)
    assert coarse.map.shape == (4, 4)
    assert smooth.map.shape == painted.map.shape == (16, 16)
    np.testing.assert_allclose(painted.map[::4, ::4], coarse.map)  # nearest paints cell values
    np.testing.assert_allclose(smooth.raw_map, coarse.map)
    np.testing.assert_allclose(smooth.map, kernels.resize(coarse.map, 16, 16, method="bicubic"), atol=1e-6)
    with pytest.raises(onnxai.InputError, match="bicubic upsampling needs"):
        onnxai.LIME(upsample="bicubic", num_samples=10, segmentation="slic").explain(model, pic)


def test_grid_cells_reads_any_label_order():
    seg = _blocks()
    perm = np.random.default_rng(0).permutation(16)
    values = np.arange(16, dtype=np.float32)
    cells = grid_cells(perm[seg], values)
    np.testing.assert_array_equal(cells, values[perm].reshape(4, 4))


def test_masked_topk_keeps_exactly_the_best_features():
    model, _ = onnx_models.region_model(region=REGION)
    e = onnxai.LIME(num_samples=200, segmentation=_blocks(), surrogate="ridge", seed=0).explain(
        model, onnx_models.region_picture())
    top = e.top_features(3)
    shown = onnxai.masked_topk(e, 3)
    visible = np.isin(e.segments, top)
    assert np.array_equal(shown[visible], e.image[visible])
    assert np.all(shown[~visible] == 0)


def test_explanation_round_trip_and_no_overwrite(tmp_path):
    model, _ = onnx_models.region_model(region=REGION)
    e = onnxai.LIME(num_samples=50, segmentation="grid", num_features=16, surrogate="ridge").explain(
        model, onnx_models.region_picture())
    npz, js = e.save(tmp_path / "e")
    back = onnxai.Explanation.load(tmp_path / "e.json")
    assert np.array_equal(back.map, e.map) and np.array_equal(back.segments, e.segments)
    assert back.target == e.target and back.params["surrogate"] == "ridge"
    before = npz.read_bytes()
    with pytest.raises(onnxai.InputError, match="exists"):
        e.save(tmp_path / "e", force=False)
    assert npz.read_bytes() == before
    assert b"pickle" not in js.read_bytes()



def test_loading_damaged_explanations_says_so(tmp_path):
    model, _ = onnx_models.region_model(region=REGION)
    e = onnxai.LIME(num_samples=30, segmentation="grid", num_features=16, surrogate="ridge").explain(
        model, onnx_models.region_picture())
    npz, js = e.save(tmp_path / "e")
    good_npz, good_js = npz.read_bytes(), js.read_text()
    cases = [
        (npz, b"not a zip file", r"cannot read .*e.npz as the explanation's arrays"),
        (npz, good_npz[:100], r"cannot read .*e.npz as the explanation's arrays"),
        (js, b"[1, 2]", r"is not an onnxai explanation \(format 'list'\)"),
        (js, b'{"format": "onnxai.explanation/1"}', "lacks target, label, score, method"),
        (js, b"\xe9", "is not UTF-8 text"),
    ]
    for path, content, words in cases:
        path.write_bytes(content)
        with pytest.raises(onnxai.InputError, match=words):
            onnxai.Explanation.load(tmp_path / "e")
        npz.write_bytes(good_npz), js.write_text(good_js)
    np.savez(npz, other=np.zeros(3))
    with pytest.raises(onnxai.InputError, match="holds no map"):
        onnxai.Explanation.load(tmp_path / "e")


def test_bad_options_are_clear():
    with pytest.raises(onnxai.InputError, match="unknown surrogate"):
        onnxai.LIME(surrogate="forest")
    with pytest.raises(onnxai.InputError, match="num_samples"):
        onnxai.LIME(num_samples=1)
    model, _ = onnx_models.region_model(region=REGION)
    with pytest.raises(onnxai.InputError, match="unknown fill"):
        onnxai.LIME(fill="sparkles", num_samples=10).explain(model, onnx_models.region_picture())
    with pytest.raises(onnxai.InputError, match="has no labels"):
        onnxai.LIME(num_samples=10).explain(model, onnx_models.region_picture(), target="zebra")
    labelled = onnxai.load(model.proto, preprocess=model.preprocess, labels=["background", "bright square"])
    with pytest.raises(onnxai.InputError, match="unknown class 'bright squares'; did you mean 'bright square'"):
        onnxai.LIME(num_samples=10).explain(labelled, onnx_models.region_picture(), target="bright squares")
    e = onnxai.LIME(num_samples=10).explain(labelled, onnx_models.region_picture(), target="Bright Square")
    assert e.target == 1 and e.label == "bright square"


def test_cli_explain_writes_outputs_and_refuses_to_overwrite(tmp_path):
    m, _ = onnx_models.region_net(region=REGION)
    path = onnx_models.save(m, tmp_path / "region.onnx")
    pic_path = tmp_path / "pic.png"

    Image.fromarray(onnx_models.region_picture(region=REGION)).save(pic_path)
    args = ["explain", str(path), str(pic_path), "--method", "lime,occlusion", "--size", "16", "--resize", "16",
            "--mean", "0.5", "--std", "0.25", "--samples", "60", "--segmentation", "grid", "--features", "16",
            "--window", "4", "--stride", "2", "--out", str(tmp_path / "out"), "--show-top", "2", "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "pic_lime_class_1.png" in names and "pic_occlusion_class_1.npz" in names
    assert "pic_lime_class_1_top2.png" in names
    png = tmp_path / "out" / "pic_lime_class_1.png"
    before = png.read_bytes()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "--force" in r.output and "Traceback" not in r.output
    assert png.read_bytes() == before
    r = CliRunner().invoke(main, args + ["--force"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, args[:3] + ["--method", "magic"])
    assert r.exit_code == 2 and "unknown method" in r.output



@pytest.mark.parametrize("cls", [onnxai.LIME, onnxai.KernelSHAP])
def test_degenerate_superpixels_are_retried_and_reported(cls):
    """SLIC gives one segment for 49 on a 64x64 noisy texture; LIME and Kernel SHAP used to return a
    constant map (R² = 1, num_features 1) without a word. Now the segmentation is retried and said."""
    model = onnx_models.conv_model(size=64)
    pic = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    e = cls(num_features=49, num_samples=200, seed=0).explain(model, pic)
    assert e.extras["num_features"] >= 25 and e.extras["num_features_asked"] == 49
    assert "slic gave 1 feature of the 49 asked" in e.extras["segmentation_note"]
    assert np.unique(e.map).size > 1
    with pytest.raises(onnxai.InputError, match="gave 1 feature; a map needs at least 2"):
        cls(segmentation=np.zeros((64, 64), np.int32), num_samples=50).explain(model, pic)
