"""Inputs onnxai does not control (issue 10): a model's metadata and declared shape, pictures and
Pillow's process-wide guard, argument values, long --feature-names lists, the LIME waterfall's end
points, and a missing weights file for export."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper
from PIL import Image

import onnx_models
import onnxai
from onnxai.cli import main

ROOT = Path(__file__).resolve().parents[1]


def with_preprocess(spec: dict) -> onnx.ModelProto:
    m, _ = onnx_models.conv_net(size=8)
    m.metadata_props.add(key="onnxai.preprocess", value=json.dumps(spec))
    return m


@pytest.mark.parametrize("field, value, words", [
    ("resize", 200000, "'resize' must be a whole number of pixels in 1..8192"),
    ("crop", [8, 100000], "'crop' must be a whole number of pixels in 1..8192"),
    ("crop", "224", "'crop'"),
    ("mean", [float("nan"), 0, 0], "'mean' must hold finite numbers"),
    ("std", [1e400, 1, 1], "'std' must hold finite numbers"),  # json reads 1e400 as inf
    ("std", [0, 1, 1], "'std': std values must be non-zero"),
    ("scale", "x", "'scale'"),
    ("channels", "RGBA", "channels must be 'RGB', 'BGR' or 'L'"),
    ("layout", "NCWH", "layout must be 'NCHW' or 'NHWC'"),
])
def test_evil_preprocess_metadata_is_refused_naming_the_field(field, value, words):
    spec = {"resize": None, "crop": 8, field: value}
    with pytest.raises(onnxai.InputError) as e:
        onnxai.load(with_preprocess(spec), providers="cpu")  # today: resize=200000 loads, and predict allocates 100s of GB
    assert "the model's onnxai.preprocess metadata is not usable" in str(e.value) and words in str(e.value)
    assert "\n" not in str(e.value)


def test_the_cli_refuses_evil_metadata_in_one_line(tmp_path):
    onnx_models.save(with_preprocess({"resize": 200000, "crop": 8}), tmp_path / "evil.onnx")
    Image.new("RGB", (10, 10)).save(tmp_path / "p.png")
    r = CliRunner().invoke(main, ["predict", str(tmp_path / "evil.onnx"), str(tmp_path / "p.png")])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "'resize'" in r.stderr


def test_a_declared_input_shape_is_bounded_before_anything_is_allocated():
    g = helper.make_graph([helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)], "huge",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 100000, 100000])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    with pytest.raises(onnxai.ModelError, match="30,000,000,000 numbers per input, above onnxai's limit"):
        onnxai.load(m, providers="cpu")  # today: a probe of 2x3x100000x100000 floats is allocated


def test_load_image_never_touches_pillows_global_even_in_threads(tmp_path, monkeypatch):
    path = tmp_path / "p.png"
    Image.new("RGB", (30, 20), "red").save(path)
    before = Image.MAX_IMAGE_PIXELS
    seen = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: seen.append(Image.MAX_IMAGE_PIXELS) or real_open(*a, **k))
    stop = threading.Event()
    watched = []

    def watch():
        while not stop.is_set():
            watched.append(Image.MAX_IMAGE_PIXELS)

    t = threading.Thread(target=watch)
    t.start()
    try:
        workers = [threading.Thread(target=lambda: [onnxai.load_image(path) for _ in range(20)]) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        stop.set()
        t.join()
    assert seen and set(seen) == {before}  # today: None while each picture is opened
    assert None not in watched and Image.MAX_IMAGE_PIXELS == before


def test_max_pixels_option_exists_and_is_used(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "p.png")
    m, _ = onnx_models.conv_net(size=8)
    onnx_models.save(m, tmp_path / "m.onnx")
    r = CliRunner().invoke(main, ["predict", str(tmp_path / "m.onnx"), str(tmp_path / "p.png"), "--max-pixels", "1000"])
    assert r.exit_code == 2 and "40x30 = 1,200 pixels, above the limit of 1,000" in r.stderr
    model = onnxai.load(m, providers="cpu", max_pixels=1000)
    with pytest.raises(onnxai.InputError, match="above the limit of 1,000"):
        model.predict(str(tmp_path / "p.png"))


def test_sixteen_bit_pictures_scale_by_65535(tmp_path):
    values = np.array([[0, 77 * 257, 50000, 1000]], np.uint16)
    Image.fromarray(values).save(tmp_path / "s.png")
    got = onnxai.load_image(tmp_path / "s.png")[..., 0]
    np.testing.assert_array_equal(got, [[0, 77, 195, 4]])  # today: divided by 50000 (77 -> 101)


def test_batch_size_zero_and_target_true_are_refused(conv_model):
    m, _ = onnx_models.conv_net(size=8)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(onnxai.InputError, match="batch_size"):
            onnxai.load(m, providers="cpu", batch_size=bad)
    pic = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with pytest.raises(onnxai.InputError, match="not True"):
        onnxai.explain(conv_model, pic, method="occlusion", target=True)


def test_a_long_feature_names_list_is_not_tried_as_a_path(tmp_path):
    from onnxai.tables.data import read_table

    names = [f"mean_radius_of_the_cell_nucleus_{j}" for j in range(30)]
    assert len(",".join(names)) > 255  # longer than a file name may be
    (tmp_path / "t.csv").write_text("\n".join(",".join(str(v) for v in range(30)) for _ in range(3)))
    X, got = read_table(tmp_path / "t.csv", ",".join(names), expect=30)  # today: OSError File name too long
    assert got == names and X.shape == (3, 30)


def test_lime_waterfall_names_the_surrogate_and_the_model():
    from onnxai.tables import TabularExplanation
    from onnxai.tables.plots import end_points, waterfall

    e = TabularExplanation(values=np.array([[[0.0, 0.3], [0.0, 0.2]]]), base_values=np.array([[0.0, 0.256]]),
                           predictions=np.array([[0.09, 0.91]]), data=np.array([[1.0, 2.0]]),
                           feature_names=["a", "b"], class_names=["no", "yes"], method="lime-tabular",
                           rows=[0], targets=np.array([1]))
    start, ends = end_points(e, 0, 0.756)
    assert start[0] == "surrogate intercept"
    assert ends == [("surrogate g(x)", 0.756), ("model probability f(x)", 0.91)]
    waterfall(e, 0)  # draws both
    e.method = "kernel-shap"
    assert end_points(e, 0, 0.91) == (("base value E[f(x)]", 0.256), [("model f(x)", 0.91)])


def test_export_checks_a_missing_weights_file_before_importing_torch(tmp_path):
    code = ("import sys\nfrom onnxai.export import export_model\n"
            f"try:\n    export_model('resnet18', {str(tmp_path / 'x.onnx')!r}, weights={str(tmp_path / 'no.pth')!r})\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n"
            "print('torch imported' if 'torch' in sys.modules else 'torch not imported')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "InputError weights file not found" in r.stdout, r.stdout + r.stderr
    assert "torch not imported" in r.stdout
