"""Real Keras 3 models (torch backend) that carry their preprocessing inside, exported to ONNX by Keras
itself (``model.export(format="onnx")``): onnxai reads the Rescaling / Normalization ops after the input
and scores a picture as Keras does on its raw 0..255 pixels. Fed the old default (ImageNet mean/std on
0..1 pixels), these models gave other probabilities and, for one of them, another top class."""

from __future__ import annotations

import numpy as np
import pytest

import onnxai


@pytest.fixture(scope="module")
def keras(tmp_path_factory):
    pytest.importorskip("torch")
    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    yield keras
    mp.undo()


def _export(keras, layers, path):
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    x = inp
    for layer in layers:
        x = layer(x)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    m = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    m(np.zeros((1, 32, 32, 3), np.float32))  # Keras exports only a model that has been called
    m.export(str(path), format="onnx", verbose=False)
    return m


@pytest.mark.parametrize("case", ["rescaling and normalization", "rescaling to -1..1"])
def test_keras_in_graph_preprocessing_is_read(keras, case, tmp_path):
    layers = {
        "rescaling and normalization": [keras.layers.Rescaling(1 / 255),
                                        keras.layers.Normalization(mean=[0.485, 0.456, 0.406],
                                                                   variance=[0.229 ** 2, 0.224 ** 2, 0.225 ** 2])],
        "rescaling to -1..1": [keras.layers.Rescaling(1 / 127.5, offset=-1)],
    }[case]
    km = _export(keras, layers, tmp_path / "m.onnx")
    model = onnxai.Model(tmp_path / "m.onnx", providers="cpu")
    assert model.preprocess_source.startswith("read from the graph"), model.preprocess_source
    assert (model.preprocess.scale, model.preprocess.mean, model.preprocess.layout) == (1.0, (0.0,) * 3, "NHWC")
    picture = np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    crop = model.preprocess.crop_image(picture, model.input.hw)
    want = np.asarray(km.predict(crop[None].astype(np.float32), verbose=0))
    np.testing.assert_allclose(model.run_batch(model.preprocess(picture, model.input.hw)), want, rtol=1e-4, atol=1e-6)
