"""A graph that normalises its own picture input (Keras Rescaling / Normalization through tf2onnx, a torch
model exported with its Normalize): onnxai reads the ops after the input and feeds the pixel range the
graph expects instead of ImageNet-normalised values (which gave confident, wrong scores before)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

import onnx_models
from onnx_models import normalising_net
import onnxai
from onnxai.graph_input import graph_preprocess, input_affine, pixel_scale

MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def channel(v, layout):
    """A per-channel constant shaped as exporters write it: (1, 3, 1, 1) for NCHW, (3,) for NHWC."""
    v = np.asarray(v, np.float32)
    return v.reshape(1, 3, 1, 1) if layout == "NCHW" else v


def picture(size=8, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def scores(m, image, **preprocess):
    model = onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=8, **preprocess))
    return model.run_batch(model.preprocess(image))


CASES = {  # name: (ops given the layout, the pixel scale onnxai should feed, channels)
    "x - 0.5 (a mean alone)": (lambda L: [("Sub", 0.5, False)], 1 / 255, "RGB"),
    "keras rescaling 1/255": (lambda L: [("Mul", 1 / 255, False)], 1.0, "RGB"),
    "keras x/127.5 - 1": (lambda L: [("Div", 127.5, False), ("Sub", 1.0, False)], 1.0, "RGB"),
    "keras rescaling + normalization": (lambda L: [("Mul", 1 / 255, False), ("Sub", channel(MEAN, L), False),
                                                   ("Div", channel(STD, L), False)], 1.0, "RGB"),
    "torch Normalize": (lambda L: [("Sub", channel(MEAN, L), False), ("Div", channel(STD, L), False)], 1 / 255, "RGB"),
    "Normalize as Add / Mul": (lambda L: [("Add", channel(-MEAN, L), True), ("Mul", channel(1 / STD, L), True)],
                               1 / 255, "RGB"),
    "BGR means": (lambda L: [("Sub", channel(MEAN[::-1] * 255, L), False), ("Div", channel(STD[::-1] * 255, L), False)],
                  1.0, "BGR"),
}


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_graphs_own_normalisation_is_read_and_the_scores_are_those_of_the_plain_net(case, layout):
    ops, scale, order = CASES[case]
    wrapped, _ = normalising_net(ops(layout), layout=layout)
    plain, _ = onnx_models.conv_net(size=8, layout=layout, softmax=True)
    model = onnxai.Model(wrapped, providers="cpu", preprocess=dict(resize=0, crop=8))
    spec = model.preprocess
    assert (spec.scale, spec.mean, spec.std, spec.channels) == (scale, (0.0,) * 3, (1.0,) * 3, order)
    assert model.preprocess_source.startswith("read from the graph")
    # the wrapped net on onnxai's input scores as the plain net on what the graph's own ops make of it
    image = picture()
    x = model.preprocess(image)
    v = x.astype(np.float64)
    for op, c, const_first in ops(layout):
        c = np.asarray(c, np.float64)
        c = c.reshape(1, 1, 1, 3) if c.size == 3 and layout == "NHWC" else c
        v = {"Mul": v * c, "Add": v + c, "Sub": c - v if const_first else v - c, "Div": v / c}[op]
    want = onnxai.Model(plain, providers="cpu", preprocess=dict(resize=0, crop=8)).run_batch(v.astype(np.float32))
    np.testing.assert_allclose(model.run_batch(x), want, rtol=1e-4, atol=1e-6)
    # and that is what the plain net gets from onnxai when told the right preprocessing by hand
    rgb = image[..., ::-1] if order == "BGR" else image
    by_hand = {"keras rescaling 1/255": dict(mean="0,0,0", std="1,1,1"),
               "x - 0.5 (a mean alone)": dict(mean="0.5,0.5,0.5", std="1,1,1"),
               "keras x/127.5 - 1": dict(mean="0.5,0.5,0.5", std="0.5,0.5,0.5"),
               "BGR means": dict(mean=",".join(map(str, MEAN[::-1])), std=",".join(map(str, STD[::-1])))}.get(case, {})
    plain_model = onnxai.Model(plain, providers="cpu", preprocess=dict(resize=0, crop=8, **_floats(by_hand)))
    np.testing.assert_allclose(model.run_batch(x), plain_model.run_batch(plain_model.preprocess(rgb)),
                               rtol=1e-4, atol=1e-5)


def _floats(d):
    return {k: tuple(float(t) for t in v.split(",")) for k, v in d.items()}


def test_per_channel_constants_behind_a_transpose_follow_the_channel_axis():
    """NHWC input, Transpose to NCHW, then (1, 3, 1, 1) constants: read on the moved channel axis; the
    same (3,) constants there would sit on the width and are not read as a normalisation."""
    ops = [("Sub", channel(MEAN, "NCHW"), False), ("Div", channel(STD, "NCHW"), False)]
    m, _ = normalising_net(ops, layout="NHWC", after="x_nchw")
    spec = onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=8)).preprocess
    assert (spec.scale, spec.mean) == (1 / 255, (0.0,) * 3)
    wrong, _ = normalising_net([("Sub", MEAN, False), ("Div", STD, False)], layout="NHWC", after="x_nchw", size=3)
    assert input_affine(wrong, "input", "NHWC") is None


def test_before_this_the_default_fed_the_wrong_range():
    """The case the reading fixes: ImageNet-normalised values into a graph that divides by 255 itself
    saturate nothing and move the scores (the regression this guards)."""
    wrapped, _ = normalising_net([("Mul", 1 / 255, False)])
    image = picture()
    read = scores(wrapped, image)
    imagenet = scores(wrapped, image, scale=1 / 255, mean=tuple(MEAN), std=tuple(STD))
    assert np.abs(read - imagenet).max() > 1e-3


def test_metadata_and_overrides_win_over_the_graph():
    wrapped, _ = normalising_net([("Mul", 1 / 255, False)])
    model = onnxai.Model(wrapped, providers="cpu", preprocess=dict(resize=0, crop=8, scale=0.5))
    assert model.preprocess.scale == 0.5 and model.preprocess_source.endswith("with overrides")
    given = onnxai.Preprocess(resize=None, crop=8)
    assert onnxai.Model(wrapped, providers="cpu", preprocess=given).preprocess is given


@pytest.mark.parametrize("ops", [
    [],  # straight into the convolution
    [("Mul", np.full((1, 3, 8, 8), 1 / 255), False)],  # a constant over space, not per channel
    [("Mul", np.full((1, 1, 8, 1), 1 / 255), False)],  # per row
    [("Div", 255.0, True)],  # 255 / x is not affine
    [("Mul", 1000.0, False)],  # neither range comes out normalised
    [("Mul", np.nan, False)],
    [("Mul", 0.0, False)],
    [("Mul", 1.0, False)],  # an identity says nothing of the range
    [("Add", 0.004, False)],  # nor does a small bias,
    [("Add", 1.0, False)],
    [("Sub", 1.0, False)],  # a shift off the middle of 0..1,
    [("Mul", -1.0, False)],  # or a sign flip
])
def test_ops_that_are_not_a_normalisation_leave_the_default(ops):
    m, _ = normalising_net(ops)
    model = onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=8))
    assert model.preprocess.mean == onnxai.Preprocess().mean and model.preprocess.scale == 1 / 255
    assert model.preprocess_source.startswith("default")


def test_a_shape_reader_on_the_input_does_not_hide_the_normalisation():
    m, _ = normalising_net([("Mul", 1 / 255, False)])
    m.graph.node.append(helper.make_node("Shape", ["input"], ["input_shape"], name="shape"))
    affine = input_affine(m, "input", "NCHW")
    assert affine is not None and pixel_scale(affine) == 255.0
    model = onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=8))
    assert model.preprocess_source.startswith("read from the graph") and model.preprocess.scale == 1.0


def test_two_readers_of_the_input_values_are_not_read():
    m, _ = normalising_net([("Mul", 1 / 255, False)])
    m.graph.node.append(helper.make_node("Relu", ["input"], ["side"], name="side"))
    assert input_affine(m, "input", "NCHW") is None


def test_grey_and_integer_inputs():
    m, _ = normalising_net([("Mul", 1 / 255, False)])
    fields, _ = graph_preprocess(m, "input", "NCHW", grey=True)
    assert fields["channels"] == "L" and fields["mean"] == (0.0,) and fields["scale"] == 1.0
    uint8 = onnx_models.with_input_dtype(normalising_net([("Mul", 1 / 255, False)])[0], onnx_models.TensorProto.UINT8)
    model = onnxai.Model(uint8, providers="cpu", preprocess=dict(resize=0, crop=8))
    assert model.preprocess_source.startswith("default (raw pixels")


def test_a_torch_export_with_its_normalize(tmp_path):
    """The ops torch.onnx.export writes for (x - mean) / std in forward (constants of shape (1, 3, 1, 1))."""
    torch = pytest.importorskip("torch")
    import torch_models

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
            self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                            torch.nn.Flatten(), torch.nn.Linear(4, 3))

        def forward(self, x):
            return self.body((x - self.mean) / self.std)

    net = Net().eval()
    path = torch_models.export(net, tmp_path / "norm.onnx", torch.zeros(1, 3, 16, 16))
    model = onnxai.Model(path, providers="cpu", preprocess=dict(resize=0, crop=16))
    assert model.preprocess.scale == 1 / 255 and model.preprocess.mean == (0.0,) * 3, model.preprocess_source
    image = picture(16)
    with torch.no_grad():
        want = net(torch.from_numpy(image.astype(np.float32).transpose(2, 0, 1)[None] / 255)).softmax(1).numpy()
    np.testing.assert_allclose(model.run_batch(model.preprocess(image)), want, rtol=1e-4, atol=1e-5)


def test_the_explanation_records_where_its_preprocessing_came_from(tmp_path):
    m, _ = normalising_net([("Mul", 1 / 255, False)])
    model = onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=8))
    e = onnxai.Occlusion(window=4, stride=4).explain(model, picture(), target=0)
    assert e.extras["preprocess"].startswith("read from the graph")
    e.save(tmp_path / "e")
    assert onnxai.Explanation.load(tmp_path / "e").extras["preprocess"] == e.extras["preprocess"]


def test_metadata_that_normalises_a_graph_that_normalises_too_is_noted(monkeypatch, capfd):
    from onnxai import _log

    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    m, _ = normalising_net([("Sub", channel(MEAN, "NCHW"), False), ("Div", channel(STD, "NCHW"), False)])
    m.metadata_props.add(key="onnxai.preprocess", value=onnxai.Preprocess(resize=None, crop=8).to_json())
    capfd.readouterr()
    model = onnxai.Model(m, providers="cpu")
    assert model.preprocess_source == "model metadata" and model.preprocess.mean == onnxai.Preprocess().mean
    assert "graph normalises its input too" in capfd.readouterr().err
    raw = onnxai.Preprocess(resize=None, crop=8, mean=(0, 0, 0), std=(1, 1, 1)).to_json()
    m.metadata_props[0].value = raw  # metadata that leaves the normalisation to the graph: nothing to say
    onnxai.Model(m, providers="cpu")
    assert "too" not in capfd.readouterr().err


def test_a_resize_before_the_normalisation_is_passed():
    """Keras's Resizing layer before its Rescaling: the resize's weights sum to 1, so the normalisation
    after it is the one the input gets."""
    m, _ = normalising_net([("Mul", 1 / 255, False)])
    g = m.graph
    g.initializer.append(numpy_helper.from_array(np.array([1.0, 1.0, 1.0, 1.0], np.float32), "ones"))
    g.node.insert(0, helper.make_node("Resize", ["input", "", "ones"], ["resized"], mode="linear", name="resize"))
    next(n for n in g.node if n.name == "norm_0").input[0] = "resized"
    affine = input_affine(m, "input", "NCHW")
    assert affine is not None and pixel_scale(affine) == 255.0
    model = onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=8))
    assert model.preprocess_source.startswith("read from the graph") and model.preprocess.scale == 1.0


@pytest.mark.parametrize("fmt, rng, want", [
    ("Bgr8", "NominalRange_0_255", (1.0, (0.0,) * 3, (1.0,) * 3, "BGR")),
    ("RGB8", "normalized_0_1", (1 / 255, (0.0,) * 3, (1.0,) * 3, "RGB")),
    ("Rgb8", "Normalized_1_1", (1 / 255, (0.5,) * 3, (0.5,) * 3, "RGB")),
    ("Rgb8", "NominalRange_16_235", (219 / 255, (-16.0,) * 3, (1.0,) * 3, "RGB")),
])
def test_onnx_image_metadata_is_read(fmt, rng, want):
    """ONNX's own image metadata (onnx/docs/MetadataProps.md; Windows ML tools and Custom Vision write it),
    keys and values case-insensitive; it wins over reading the graph, and onnxai's own metadata over it."""
    m, _ = normalising_net([("Mul", 1 / 255, False)])  # the graph alone would say 0..255, RGB
    m.metadata_props.add(key="Image.BitmapPixelFormat", value=fmt)
    m.metadata_props.add(key="image.nominalpixelrange", value=rng)
    model = onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=8))
    spec = model.preprocess
    assert spec.scale == pytest.approx(want[0]) and (spec.mean, spec.std, spec.channels) == want[1:]
    assert model.preprocess_source.startswith("the model's ONNX image metadata"), model.preprocess_source
    x = model.preprocess(picture())
    v = picture().astype(np.float32)[..., ::-1] if want[3] == "BGR" else picture().astype(np.float32)
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), (v * want[0] - want[1][0]) / want[2][0], rtol=1e-5, atol=1e-5)
    m.metadata_props.add(key="onnxai.preprocess", value=onnxai.Preprocess(resize=None, crop=8).to_json())
    assert onnxai.Model(m, providers="cpu").preprocess_source == "model metadata"


def test_unknown_onnx_image_metadata_is_ignored_with_a_note(monkeypatch, capfd):
    from onnxai import _log

    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    m, _ = onnx_models.conv_net()
    m.metadata_props.add(key="Image.BitmapPixelFormat", value="Rgba8")
    m.metadata_props.add(key="Image.NominalPixelRange", value="<script>")
    model = onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=8))
    err = capfd.readouterr().err
    assert "ignoring the model's Image.NominalPixelRange" in err and "ignoring the model's Image.BitmapPixelFormat" in err
    assert model.preprocess_source.startswith("default") and model.preprocess.mean == onnxai.Preprocess().mean


def test_onnx_image_metadata_on_an_integer_input_and_without_a_range(monkeypatch, capfd):
    from onnxai import _log

    monkeypatch.setattr(_log, "_said", set())
    monkeypatch.setattr(_log, "_quiet", False)
    uint8 = onnx_models.with_input_dtype(onnx_models.conv_net()[0], onnx_models.TensorProto.UINT8, 1 / 255)
    uint8.metadata_props.add(key="Image.BitmapPixelFormat", value="Bgr8")
    uint8.metadata_props.add(key="Image.NominalPixelRange", value="Normalized_0_1")
    model = onnxai.Model(uint8, providers="cpu", preprocess=dict(resize=0, crop=8))  # loads: raw pixels kept
    assert (model.preprocess.scale, model.preprocess.channels) == (1.0, "BGR")
    assert "its input is an integer type" in capfd.readouterr().err
    m, _ = onnx_models.conv_net()
    m.metadata_props.add(key="Image.BitmapPixelFormat", value="Bgr8")  # an order, no range: the range is a guess
    model = onnxai.Model(m, providers="cpu", preprocess=dict(resize=0, crop=8))
    assert model.preprocess.channels == "BGR" and model.preprocess.mean == onnxai.Preprocess().mean
    assert "the default is used: ImageNet mean/std" in capfd.readouterr().err
