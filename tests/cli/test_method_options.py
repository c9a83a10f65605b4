"""The method options of explain / evaluate / sanity: each option goes to the selected methods whose
constructor takes its parameter, one that none takes is an error, --param wins for one method, and
the deprecated spellings still work and say so."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

import onnx_models
from onnxai.cli import main
from onnxai.cli.method_options import OPTIONS, build_methods, pop_settings, route, takes
from onnxai.errors import InputError
from onnxai.methods import METHODS

SIZE = 16
REGION = (4, 10, 4, 10)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("options")
    m, _ = onnx_models.region_net(size=SIZE, region=REGION)
    onnx_models.save(m, d / "region.onnx")
    Image.fromarray(onnx_models.region_picture(SIZE, REGION)).save(d / "pic.png")
    opts = ["--providers", "cpu", "--resize", str(SIZE), "--size", str(SIZE), "--mean", "0.5", "--std", "0.25",
            "--no-progress"]
    return d, [str(d / "region.onnx"), str(d / "pic.png")], opts


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    errors = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# ----------------------------------------------------------------------------- routing, without a model


def test_every_option_names_a_parameter_some_method_takes():
    for opt, param, _ in OPTIONS:
        assert any(takes(cls, param) for cls in METHODS.values()), opt


def test_an_option_goes_to_every_selected_method_that_takes_it_and_only_there():
    settings = {"fill": ("--fill", "black"), "seed": ("--seed", 3), "window": ("--window", "4")}
    per = route(["lime", "occlusion"], settings, METHODS)
    assert per == {"lime": {"fill": "black", "seed": 3}, "occlusion": {"fill": "black", "window": "4"}}


def test_an_option_no_selected_method_takes_is_an_error_naming_who_takes_it():
    with pytest.raises(InputError) as e:
        route(["lime", "occlusion"], {"layer": ("--layer", "act")}, METHODS)
    msg = str(e.value)
    assert msg.startswith("--layer (layer) is not a parameter of lime or occlusion; it is for ")
    for name in ("cam", "grad-cam", "score-cam"):
        assert name in msg.split("it is for ")[1]


def test_param_wins_over_the_option_for_its_method_only():
    settings = {"fill": ("--fill", "black")}
    objs = dict(build_methods(["lime", "occlusion"], settings, ["occlusion.fill=blur", "lime.num_samples=7"], True))
    assert objs["lime"].fill == "black" and objs["lime"].num_samples == 7
    assert objs["occlusion"].fill == "blur"
    assert objs["lime"]._progress is False and objs["occlusion"]._progress is False  # --no-progress


def test_param_for_a_method_not_selected_is_an_error():
    with pytest.raises(InputError, match=r"--param names \['rise'\] but the methods are \['lime'\]"):
        build_methods(["lime"], {}, ["rise.cells=4"], False)


def test_deprecated_spelling_counts_as_the_new_option_and_conflicts_are_errors(capsys):
    kw = {param: None for _, param, _ in OPTIONS} | {"deprecated_nsamples": 20, "deprecated_masks": None}
    assert pop_settings(dict(kw)) == {"num_samples": ("--nsamples", 20)}
    assert "--nsamples is deprecated; use --samples" in capsys.readouterr().err
    with pytest.raises(InputError, match="--nsamples 20 and --samples 30 disagree; give only --samples"):
        pop_settings(dict(kw, num_samples=30))


# ----------------------------------------------------------------------------- on the command line


def test_explain_option_no_selected_method_takes_exits_2(files):
    d, (model, pic), opts = files
    line = error_line(invoke("explain", model, pic, "--method", "lime", "--window", "4", "--out", d / "o1", *opts))
    assert line == ("error: --window (window) is not a parameter of lime; it is for occlusion "
                    "(add such a method to --method, or drop the option)")
    assert not (d / "o1").exists()


def test_explain_param_reaches_one_method_and_the_option_the_others(files):
    d, (model, pic), opts = files
    out = d / "o2"
    r = invoke("explain", model, pic, "--method", "lime,occlusion", "--fill", "black", "--window", "4",
               "--param", "occlusion.fill=zero", "--param", "lime.num_samples=24", "--segmentation", "grid",
               "--features", "4", "--target", "1", "--out", out, *opts)
    assert r.exit_code == 0, r.output
    lime = json.loads((out / "pic_lime_class_1.json").read_text())["params"]
    occ = json.loads((out / "pic_occlusion_class_1.json").read_text())["params"]
    assert lime["fill"] == "black" and lime["num_samples"] == 24 and lime["num_features"] == 4
    assert occ["fill"] == "zero" and occ["window"] in ("4", 4, [4, 4])
    assert "num_samples" not in occ and "num_features" not in occ


def test_deprecated_aliases_still_work_and_say_so(files):
    d, (model, pic), opts = files
    r = invoke("explain", model, pic, "--method", "lime", "--nsamples", "24", "--segmentation", "grid", "--features",
               "4", "--alpha", "0.3", "--target", "1", "--out", d / "o3", *opts)
    assert r.exit_code == 0, r.output
    assert "note: --nsamples is deprecated; use --samples" in r.stderr
    assert "note: --alpha is deprecated; use --opacity" in r.stderr
    assert json.loads((d / "o3" / "pic_lime_class_1.json").read_text())["params"]["num_samples"] == 24
    line = error_line(invoke("explain", model, pic, "--alpha", "0.3", "--opacity", "0.7", "--out", d / "o4", *opts))
    assert "--alpha 0.3 and --opacity 0.7 disagree" in line


def test_quiet_silences_the_deprecation_note(files):
    d, (model, pic), opts = files
    from onnxai import _log

    try:
        r = invoke("--quiet", "explain", model, pic, "--method", "lime", "--nsamples", "24", "--segmentation", "grid",
                   "--features", "4", "--out", d / "o5", *opts)
    finally:
        _log.set_quiet(False)
    assert r.exit_code == 0, r.output
    assert "deprecated" not in r.stderr


def test_seed_is_the_methods_seed_in_evaluate_and_sanity(files):
    d, (model, pic), opts = files
    for command in (["evaluate", model, pic, "--methods", "occlusion"], ["sanity", model, pic, "--method", "occlusion"]):
        line = error_line(invoke(*command, "--seed", "1", "--out", d / "o6", *opts))
        assert line.startswith("error: --seed (seed) is not a parameter of occlusion; it is for lime")
    assert "--baseline-seed" in invoke("evaluate", "--help").output
    assert "--weights-seed" in invoke("sanity", "--help").output


# ----------------------------------------------------------------------------- --help of every command module


@pytest.mark.parametrize("command", sorted(main.commands))
def test_help_of_every_command(command):
    r = invoke(command, "--help")
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"Usage: main {command} ") or r.output.startswith(f"Usage: onnxai {command} ")


@pytest.mark.parametrize("command", ["explain", "evaluate", "sanity"])
def test_help_lists_the_methods_that_take_each_option(command):
    text = " ".join(invoke(command, "--help").output.split())
    assert "--samples N|AUTO" in text and "lime=1000" in text
    assert "--window N|HXW" in text and "[occlusion]" in text
    assert "--nsamples" not in text and "--masks" not in text and "--alpha" not in text  # hidden
