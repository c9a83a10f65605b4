"""The command line on bad input (one clear line, exit status 2, no traceback) and on good input:
patch, inspect --layers --json, predict --json on the shipped model, and an example in every --help."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import onnx_models
from onnxai import runtime as model_mod  # providers and CUDA probing live in runtime.py
from onnxai.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "efficientnet_lite0.onnx"
CHELSEA = ROOT / "samples" / "chelsea.png"
COFFEE = ROOT / "samples" / "coffee.png"
CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat"}
COFFEE_CLASSES = {"espresso", "cup", "coffee mug"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    m, _ = onnx_models.conv_net(size=8)
    raw = m.SerializeToString()
    picture = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    from PIL import Image

    Image.fromarray(picture).save(d / "pic.png")
    (d / "tiny.onnx").write_bytes(raw)
    (d / "half.onnx").write_bytes(raw[: len(raw) // 2])
    (d / "random.onnx").write_bytes(np.random.default_rng(1).bytes(4096))
    (d / "text.png").write_text("not a picture, just words\n")
    onnx_models.save(onnx_models.tabular_net()[0], d / "table.onnx")
    onnx_models.save(onnx_models.nan_net()[0], d / "nan.onnx")
    return d


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def fails(result, message: str):
    """Exit 2, the message on one 'error:' line on stderr, no traceback anywhere."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert message in errors[0], errors[0]
    return errors[0]


def test_missing_model_file(files):
    line = fails(invoke("predict", files / "nope.onnx", files / "pic.png"), "model file not found: ")
    assert line == f"error: model file not found: {files / 'nope.onnx'}"


def test_not_an_onnx_file(files):
    fails(invoke("predict", files / "random.onnx", files / "pic.png"),
          f"{files / 'random.onnx'} is not a readable ONNX model (DecodeError")


def test_truncated_onnx_file(files):
    line = fails(invoke("inspect", files / "half.onnx"), f"{files / 'half.onnx'} is not a readable ONNX model")
    assert "the file may be truncated or of another format" in line


def test_model_whose_input_is_not_an_image(files):
    line = fails(invoke("predict", files / "table.onnx", files / "pic.png"),  # predict takes table rows there
                 f"{files / 'pic.png'} is a picture, but this model takes table rows (x: ?x4 float32 (not an image, "
                 "dynamic batch)); give a CSV or Parquet file of rows")
    assert line.count("error") == 1


def test_image_file_that_is_not_an_image(files):
    fails(invoke("predict", files / "tiny.onnx", files / "text.png"), f"cannot read {files / 'text.png'} as an image (")


def test_missing_image_file(files):
    fails(invoke("predict", files / "tiny.onnx", files / "gone.jpg"), f"image file not found: {files / 'gone.jpg'}")


def test_unknown_layer_for_patch(files, tmp_path):
    out = tmp_path / "p.onnx"
    line = fails(invoke("patch", files / "tiny.onnx", "--layer", "actt", "-o", out), "no tensor named 'actt' in the model")
    assert "close names: act" in line
    assert not out.exists()


def test_providers_cuda_without_cuda(files):
    ok, _ = model_mod._cuda_usable(onnx_models.conv_net()[0].SerializeToString(), model_mod.session_options())
    if ok:
        pytest.skip("CUDA really works on this machine")
    result = invoke("predict", "--providers", "cuda", files / "tiny.onnx", files / "pic.png")
    line = fails(result, "--providers cuda was asked for but CUDA cannot be used here: ")
    assert "--providers cpu" in line
    assert "\x1b[" not in result.output


def test_unknown_provider_name(files):
    fails(invoke("predict", "--providers", "TPUExecutionProvider", files / "tiny.onnx", files / "pic.png"),
          "provider 'TPUExecutionProvider' is not in this onnxruntime build")


def test_nan_output(files):
    fails(invoke("predict", "--providers", "cpu", files / "nan.onnx", files / "pic.png"),
          "the model produced NaN or infinite scores for 1 of 1 inputs")


def test_bad_option_values(files):
    fails(invoke("predict", "--mean", "0.5,0.5", files / "tiny.onnx", files / "pic.png"), "--mean needs 3 numbers")
    fails(invoke("predict", "--output", "nope", files / "tiny.onnx", files / "pic.png"),
          "no output named 'nope'; the outputs are ['logits']")


def test_predict_tiny_model_json_matches_the_api(files):
    import onnxai

    result = invoke("predict", "--providers", "cpu", "--json", "--top", "3", files / "tiny.onnx", files / "pic.png")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    want = onnxai.load(files / "tiny.onnx", providers="cpu").predict(files / "pic.png", top=3)[0]
    assert payload[0]["image"] == str(files / "pic.png")
    assert [t["index"] for t in payload[0]["top"]] == [p.index for p in want]
    assert [t["label"] for t in payload[0]["top"]] == [f"class {p.index}" for p in want]
    np.testing.assert_allclose([t["probability"] for t in payload[0]["top"]], [p.probability for p in want], rtol=1e-6)


# ----------------------------------------------------------------------------- patch


def test_patch_writes_extra_outputs_and_refuses_to_overwrite(files, tmp_path):
    out = tmp_path / "patched.onnx"
    result = invoke("patch", files / "tiny.onnx", "--layer", "act", "--layer", "pool", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {out}: outputs ['logits', 'act', 'pool']"
    patched = onnx.load(str(out))
    assert [o.name for o in patched.graph.output] == ["logits", "act", "pool"]
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    _, p = onnx_models.conv_net(size=8)
    logits, act, pool = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    ref_act, ref_logits = onnx_models.conv_forward(x, p)
    np.testing.assert_allclose(act, ref_act, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=1e-5)

    before = out.read_bytes()
    again = invoke("patch", files / "tiny.onnx", "--layer", "conv", "-o", out)
    fails(again, f"{out} exists; pass --force to overwrite it")
    assert out.read_bytes() == before
    forced = invoke("patch", files / "tiny.onnx", "--layer", "conv", "-o", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["logits", "conv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patched.onnx"]  # no temp files left


def test_patch_refuses_to_write_over_its_input(files, tmp_path):
    src = tmp_path / "m.onnx"
    src.write_bytes((files / "tiny.onnx").read_bytes())
    fails(invoke("patch", src, "--layer", "act", "-o", src, "--force"), "the output path is the input model")
    assert src.read_bytes() == (files / "tiny.onnx").read_bytes()


# ----------------------------------------------------------------------------- inspect


def test_inspect_layers_json(files):
    result = invoke("inspect", "--providers", "cpu", "--layers", "--json", files / "tiny.onnx")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert [l["name"] for l in info["layers"]] == ["conv", "act", "pool", "flat", "logits"]
    by_name = {l["name"]: l for l in info["layers"]}
    assert by_name["act"] == {"name": "act", "op": "Relu", "shape": "?x4x8x8", "spatial": True, "layout": "nchw",
                              "grid": [8, 8], "cuts": True, "why": "Relu keeps the layout of its NCHW input"}
    assert info["cam_methods"] == ("CAM, Grad-CAM, Score-CAM at 'act' (auto: the features the linear head pools, "
                                   "channels on axis 1, 8x8 grid)")
    assert by_name["pool"]["spatial"] is False and by_name["logits"]["shape"] == "?x5"
    assert info["class_output"] == "logits" and info["num_classes"] == 5
    assert info["input"]["shape"] == [None, 3, 8, 8] and info["input"]["layout"] == "NCHW"
    assert info["provider"] == "CPUExecutionProvider"
    assert info["linear_head"]["features"] == "act" and info["linear_head"]["channels"] == 4
    spatial = json.loads(invoke("inspect", "--providers", "cpu", "--layers", "--spatial", "--json",
                                files / "tiny.onnx").stdout)
    assert [l["name"] for l in spatial["layers"]] == ["conv", "act"]


def test_inspect_text_mentions_no_head(files):
    result = invoke("inspect", "--providers", "cpu", files / "table.onnx")
    assert result.exit_code == 0, result.output
    assert "input      x: ?x4 float32 (not an image, dynamic batch)" in result.stdout
    assert "head       no linear head on global pooling" in result.stdout
    assert "CAMs       none: a table model (use kernel-shap or lime on rows)" in result.stdout
    assert "Grad-CAM" not in result.stdout


def test_inspect_says_which_layer_auto_reads_and_marks_maps(tmp_path):
    """The ConvNeXt-shaped graph: no linear head; auto reads 'stage'; the 1x1 head tensors are not marked."""
    path = onnx_models.save(onnx_models.convnext_like_net(), tmp_path / "convnext.onnx")
    result = invoke("inspect", "--providers", "cpu", "--layers", "--crop", "16", "--resize", "0", path)
    assert result.exit_code == 0, result.output
    assert "CAMs       Grad-CAM, Score-CAM (CAM needs a linear head) at 'stage' (auto: the last map" in result.stdout
    lines = {l.split()[0]: l for l in result.stdout.splitlines() if l.startswith("  ") and len(l.split()) > 2}
    assert lines["stage"].endswith("* nchw 4x4") and lines["blk_ln"].endswith("+ nhwc 4x4")
    assert lines["head_norm"].endswith("?x1x1x8")


def test_explain_channel_axis_and_prefix_tokens_reach_the_cam_methods(tmp_path):
    path = onnx_models.save(onnx_models.ambiguous_net(), tmp_path / "amb.onnx")
    pic = tmp_path / "pic.png"
    from PIL import Image

    Image.fromarray(onnx_models.cam_picture(16)).save(pic)
    common = ["explain", "--providers", "cpu", "--crop", "16", "--resize", "0", path, pic, "--out", tmp_path / "o",
              "--method", "grad-cam", "--layer", "mixed"]
    fails(invoke(*common), "pass channel_axis=1 or 3 (--channel-axis)")
    result = invoke(*common, "--channel-axis", "1")
    assert result.exit_code == 0, result.output
    assert "layer mixed (given, read as NCHW on a 8x8 grid)" in result.stdout
    facts = json.loads(next((tmp_path / "o").glob("pic_grad-cam_*.json")).read_text())
    assert facts["params"]["channel_axis"] == 1 and facts["extras"]["layer_grid"] == [8, 8]
    fails(invoke(*common[:-4], "--method", "lime", "--prefix-tokens", "1"), "--prefix-tokens (prefix_tokens) is not a parameter of lime")


# ----------------------------------------------------------------------------- the shipped model


def test_predict_shipped_model_json():
    for path in (SHIPPED, CHELSEA, COFFEE):
        if not path.exists():
            pytest.skip(f"{path.relative_to(ROOT)} is missing (build it with tools/export_model.py)")
    result = invoke("predict", "--json", "--top", "3", SHIPPED, CHELSEA, COFFEE)
    assert result.exit_code == 0, result.output
    chelsea, coffee = json.loads(result.stdout)
    assert chelsea["top"][0]["label"] in CAT_CLASSES, chelsea
    assert coffee["top"][0]["label"] in COFFEE_CLASSES, coffee
    assert 0.0 < coffee["top"][0]["probability"] <= 1.0
    assert [t["probability"] for t in chelsea["top"]] == sorted((t["probability"] for t in chelsea["top"]), reverse=True)


# ----------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", sorted(main.commands))
def test_help_shows_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, result.output
    assert f"onnxai {command} " in result.output  # the example is a command line of this command


def test_main_help_has_a_quick_start():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "onnxai predict models/efficientnet_lite0.onnx samples/chelsea.png" in result.output


def test_explain_prepares_each_picture_once_for_all_methods(files, tmp_path, monkeypatch):
    """Several methods on one picture: it is decoded, resized and cropped once (the planning pass), not
    once more per method."""
    from onnxai.model import Model

    calls = []
    real = Model.prepare
    monkeypatch.setattr(Model, "prepare", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    r = invoke("explain", files / "tiny.onnx", files / "pic.png", "--method", "occlusion,grad-cam,rise",
               "--samples", "20", "--out", tmp_path / "o", "--no-progress")
    assert r.exit_code == 0, r.output
    assert len(calls) == 1 and len(list((tmp_path / "o").glob("*.png"))) >= 3
