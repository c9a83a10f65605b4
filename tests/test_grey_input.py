"""One-channel (grey) picture models, e.g. MNIST-style or medical ones: the picture's luma is fed, with
one mean and std. Before, every such model was refused at its first input (3 channels given, 1 taken)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import onnxai
from onnxai.preprocess import LUMA


def _grey_net(channels: int = 1, layout: str = "NCHW", seed: int = 0):
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal((4, channels, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "F")]
    nodes, x = [], "x"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]))
        x = "xt"
    nodes += [helper.make_node("Conv", [x, "W"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
              helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("MatMul", ["f", "F"], ["z"])]
    shape = [None, channels, 12, 12] if layout == "NCHW" else [None, 12, 12, channels]
    g = helper.make_graph(nodes, "grey", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _picture(seed=1):
    return np.random.default_rng(seed).integers(0, 256, (12, 12, 3)).astype(np.uint8)


def test_the_grey_spec_is_the_luma_with_one_mean_and_std():
    pre = onnxai.Preprocess(resize=None, crop=12, mean=(0.5,) * 3, std=(0.25,) * 3, channels="L")
    assert pre.mean == (0.5,) and pre.std == (0.25,)
    pic = _picture()
    x = pre.normalise(pic)
    assert x.shape == (1, 1, 12, 12)
    pil = np.asarray(Image.fromarray(pic).convert("L"), np.float32)  # Pillow rounds its luma to whole levels
    np.testing.assert_allclose(x[0, 0] * 0.25 + 0.5, pil / 255, atol=0.6 / 255)
    back = pre.denormalise(x)
    assert back.shape == (12, 12, 3) and np.abs(back[..., 0].astype(int) - pil).max() <= 1
    assert (back[..., 0] == back[..., 2]).all()
    with pytest.raises(onnxai.InputError, match="a grey \\(channels 'L'\\) input takes one mean"):
        onnxai.Preprocess(channels="L")  # ImageNet's three means
    assert onnxai.Preprocess.from_json(pre.to_json()) == pre


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_a_grey_model_scores_the_pictures_luma(layout):
    m = _grey_net(layout=layout)
    model = onnxai.Model(m, providers="cpu")
    assert model.preprocess.channels == "L" and "luma" in model.preprocess_source
    pic = _picture()
    x, crop = model.prepare(pic)  # the default resize then crop: crop is the RGB picture the model sees
    grey = (crop.astype(np.float32) / 255) @ LUMA  # default: 0..1, no mean or std
    feed = grey[None, None] if layout == "NCHW" else grey[None, :, :, None]
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": feed.astype(np.float32)})[0]
    np.testing.assert_allclose(model.scores(x, "logits"), logits, atol=1e-5)
    for method, kw in [("occlusion", dict(window=3, stride=3)), ("grad-cam", {}), ("cam", {}),
                       ("lime", dict(num_samples=40, segmentation="grid", num_features=9, fill="segment-mean")),
                       ("rise", dict(num_samples=16, cells=3))]:
        e = onnxai.explain(model, pic, method=method, **kw)
        assert e.map.shape == (12, 12) and np.isfinite(e.map).all() and e.image.shape == (12, 12, 3)


def test_channel_mismatches_and_other_counts_are_refused():
    rgb = onnxai.Preprocess(resize=None, crop=12)
    with pytest.raises(onnxai.InputError, match=r"takes 1 channel\(s\) but the preprocessing \(given\) gives RGB; "
                                                 "set channels L"):
        onnxai.Model(_grey_net(), providers="cpu", preprocess=rgb)
    with pytest.raises(onnxai.ModelError, match="has 4 channels; onnxai feeds pictures as 3"):
        onnxai.Model(_grey_net(channels=4), providers="cpu")
