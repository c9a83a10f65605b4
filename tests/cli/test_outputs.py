"""What the commands write, as an attacker or an unlucky user would meet it (issue 10): planted symbolic
links, names that collide, labels with newlines or formulas, outputs checked before the work, OS errors,
bad option values, onnxruntime's prints on stdout, -q after the command, --help's command list."""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import onnx_models
from onnxai.cli import main

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def run_cli(*args, cwd=None):
    """The command in a fresh process (descriptors 1 and 2 are real there)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ONNXAI_QUIET", None)
    return subprocess.run([sys.executable, "-m", "onnxai.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def labelled_model(path: Path, labels) -> Path:
    m, _ = onnx_models.conv_net(size=8, classes=len(labels))
    m.metadata_props.add(key="onnxai.labels", value=json.dumps(labels))
    onnx_models.save(m, path)
    return path


@pytest.fixture()
def d(tmp_path):
    m, _ = onnx_models.conv_net(size=8)
    onnx_models.save(m, tmp_path / "tiny.onnx")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "pic.png")
    return tmp_path


# --------------------------------------------------------------------------- 1. symbolic links


def test_a_link_planted_at_a_temporary_name_is_not_written_through(d):
    out = d / "out"
    out.mkdir()
    victims = []
    # today's fixed temporary names: NAME.png.tmp.png, NAME.npz.tmp.npz, NAME.json.tmp, report.html.tmp
    for k, tmp in enumerate(["pic_occlusion_class_1.png.tmp.png", "pic_occlusion_class_1.npz.tmp.npz",
                             "pic_occlusion_class_1.json.tmp", "report.html.tmp"]):
        victim = d / f"victim{k}.txt"
        victim.write_text("precious")
        (out / tmp).symlink_to(victim)
        victims.append(victim)
    r = invoke("explain", d / "tiny.onnx", d / "pic.png", "-m", "occlusion", "--out", out, "--report", "--force")
    assert r.exit_code == 0, r.output
    assert [v.read_text() for v in victims] == ["precious"] * 4
    assert (out / "pic_occlusion_class_1.png").is_file() and not (out / "pic_occlusion_class_1.png").is_symlink()


def test_a_link_at_the_destination_is_refused_even_with_force(d):
    out = d / "out"
    out.mkdir()
    victim = d / "victim.json"
    victim.write_text("precious")
    (out / "pic_occlusion_class_1.json").symlink_to(victim)
    r = invoke("explain", d / "tiny.onnx", d / "pic.png", "-m", "occlusion", "--out", out, "--force")
    assert r.exit_code == 2, r.output
    assert "symbolic link" in r.stderr and "Traceback" not in r.output
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["pic_occlusion_class_1.json"]  # nothing else written


def test_patch_refuses_a_link_at_its_output(d):
    victim = d / "victim.onnx"
    victim.write_text("precious")
    (d / "p.onnx").symlink_to(victim)
    r = invoke("patch", d / "tiny.onnx", "--layer", "conv", "-o", d / "p.onnx", "--force")
    assert r.exit_code == 2 and "symbolic link" in r.stderr
    assert victim.read_text() == "precious"


# --------------------------------------------------------------------------- 4, 6. labels from elsewhere


def test_formula_labels_are_neutralised_in_evaluation_csv_and_newlines_do_not_crash(d):
    labels = ["=HYPERLINK(\"http://x\",\"y\")", "a\nb\x1b[31m", "+cmd", "@sum", "-2+3"]
    model = labelled_model(d / "evil.onnx", labels)
    r = invoke("explain", model, d / "pic.png", "-m", "occlusion,rise", "--target", "0,1", "--samples", "8",
               "--out", d / "o")
    assert r.exit_code == 0, r.output  # today: internal error (multiline text) half way
    saved = json.loads((d / "o" / "pic_occlusion_1_a_b_31m.json").read_text())
    assert saved["label"] == "a\nb\x1b[31m"  # the original stays in the JSON
    r = invoke("evaluate", model, d / "pic.png", "--methods", "occlusion", "--target", "0", "--out", d / "e")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(d / "e" / "evaluation.csv", newline="", encoding="utf-8")))
    assert {row["label"] for row in rows} == {"'" + labels[0]}
    assert all(not row[k].startswith(("=", "+", "-", "@", "\t", "\r")) or row[k].lstrip("-").replace(".", "").isdigit()
               for row in rows for k in row)
    assert float(rows[0]["deletion"]) >= 0  # numbers stay numbers


# --------------------------------------------------------------------------- 5. names that collide


def test_labels_that_differ_in_case_get_different_files(d):
    model = labelled_model(d / "m.onnx", ["Cardigan", "cardigan", "x", "y", "z"])
    r = invoke("explain", model, d / "pic.png", "-m", "occlusion", "--target", "0,1", "--out", d / "o")
    assert r.exit_code == 0, r.output
    pngs = sorted(p.name for p in (d / "o").glob("*.png"))
    assert pngs == ["pic_occlusion_0_cardigan.png", "pic_occlusion_1_cardigan.png"]
    assert json.loads((d / "o" / "pic_occlusion_0_cardigan.json").read_text())["label"] == "Cardigan"


def test_same_named_pictures_from_two_folders_do_not_collide(d):
    for sub in ("a", "b"):
        (d / sub).mkdir()
        Image.fromarray(np.full((20, 20, 3), 40 if sub == "a" else 200, np.uint8)).save(d / sub / "cat.png")
    r = invoke("explain", d / "tiny.onnx", d / "a" / "cat.png", d / "b" / "cat.png", "-m", "occlusion,rise",
               "--samples", "8", "--out", d / "o")
    assert r.exit_code == 0, r.output
    montages = sorted(p.name for p in (d / "o").glob("*montage.png"))
    assert montages == ["a_cat_montage.png", "b_cat_montage.png"]
    assert len(list((d / "o").glob("*_occlusion_class_*.npz"))) == 2


# --------------------------------------------------------------------------- 7. check before computing


def test_an_existing_output_of_a_later_method_stops_the_run_before_any_work(d):
    out = d / "o"
    out.mkdir()
    (out / "pic_rise_class_1.png").write_text("old")
    r = invoke("explain", d / "tiny.onnx", d / "pic.png", "-m", "occlusion,rise", "--samples", "8", "--out", out)
    assert r.exit_code == 2 and "pic_rise_class_1.png exists" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["pic_rise_class_1.png"]  # occlusion wrote nothing first


def test_library_writers_overwrite_by_default_and_refuse_with_force_false(d, region_model):
    import onnxai
    from onnxai import render

    model, _ = region_model
    e = onnxai.explain(model, onnx_models.region_picture(), method="occlusion", window=4, stride=2)
    for _ in range(2):  # the README's snippet, run twice
        e.save(d / "x" / "e")
        render.save_png(render.explanation_panel(e), d / "x" / "e.png")
    with pytest.raises(onnxai.InputError, match="exists"):
        e.save(d / "x" / "e", force=False)
    (d / "x" / "link.png").symlink_to(d / "x" / "e.png")
    with pytest.raises(onnxai.InputError, match="symbolic link"):
        render.save_png(render.explanation_panel(e), d / "x" / "link.png")


# --------------------------------------------------------------------------- 8. OS errors, option values


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_os_errors_while_writing_are_one_line_and_status_2(d, monkeypatch, code):
    def refuse(self, fp, *a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Image.Image, "save", refuse)
    r = invoke("explain", d / "tiny.onnx", d / "pic.png", "-m", "occlusion", "--out", d / "o")
    assert r.exit_code == 2, r.output
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and os.strerror(code) in lines[0] and "internal error" not in r.output
    assert not list((d / "o").glob("*.png"))


@pytest.mark.parametrize("option", [("--window", "10x"), ("--stride", "abc"), ("--window", "4x0")])
def test_bad_window_or_stride_is_a_usage_error_before_the_model_loads(d, option):
    r = invoke("explain", d / "no-such-model.onnx", d / "pic.png", "-m", "occlusion", *option)
    assert r.exit_code == 2
    assert f"Invalid value for '{option[0]}'" in r.output and "no-such-model" not in r.output


# --------------------------------------------------------------------------- 9. stdout stays clean


def test_predict_json_stdout_parses_even_when_a_provider_falls_back(d):
    r = run_cli("predict", d / "tiny.onnx", d / "pic.png", "--json", "--providers",
                "TensorrtExecutionProvider,CPUExecutionProvider")
    if r.returncode == 2 and "not in this onnxruntime build" in r.stderr:
        pytest.skip("this onnxruntime has no TensorRT provider to fall back from")
    assert r.returncode == 0, r.stderr
    payload = json.loads(r.stdout)  # today: the "EP Error" banner comes first on stdout
    assert payload[0]["provider"] == "CPUExecutionProvider" and len(payload[0]["top"]) == 5
    plain = run_cli("predict", d / "tiny.onnx", d / "pic.png", "--json")
    assert plain.returncode == 0 and json.loads(plain.stdout)[0]["image"].endswith("pic.png")


def test_quiet_after_the_command_and_no_cuda_note_without_a_driver(d):
    from onnxai import runtime

    loud = run_cli("predict", d / "tiny.onnx", d / "pic.png", "--output", "logits")
    assert loud.returncode == 0
    if not runtime.gpu_driver_present():
        assert "CUDA" not in loud.stderr  # a CPU-only machine: the CPU is no news
    quiet = run_cli("predict", d / "tiny.onnx", d / "pic.png", "-q", "--providers", "TensorrtExecutionProvider")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_inspect_says_which_output_and_why(d):
    from onnx import TensorProto

    m, _ = onnx_models.conv_net(size=8)
    onnx_models.save(onnx_models.with_extra_outputs(m, [("flat", TensorProto.FLOAT, [None, 4])]), d / "two.onnx")
    r = invoke("inspect", d / "two.onnx", "--json")
    info = json.loads(r.stdout)
    assert info["class_output"] == "logits" and "named like logits" in info["class_output_choice"]
    assert info["provider"] == "CPUExecutionProvider"


# --------------------------------------------------------------------------- 14. small things


def test_help_command_list_is_not_cut_and_the_label_example_exists():
    text = invoke("--help").output
    commands = text.split("Commands:")[1].splitlines()
    assert all(not line.rstrip().endswith(("...", "al.")) for line in commands), commands
    help_text = invoke("explain", "--help").output
    meta = {p.key: p.value for p in __import__("onnx").load(str(ROOT / "models" / "efficientnet_lite0.onnx"),
                                                             load_external_data=False).metadata_props}
    labels = json.loads(meta["onnxai.labels"])
    examples = [part.split("'")[1] for part in help_text.split("--target ")[1:] if part.startswith("'")]
    examples += [help_text.split("(e.g. '")[1].split("'")[0]]
    assert examples and all(e in labels for e in examples), examples


def test_metrics_progress_is_said_per_map(d):
    r = invoke("explain", d / "tiny.onnx", d / "pic.png", "-m", "occlusion", "--metrics", "--out", d / "o")
    assert r.exit_code == 0, r.output
    assert "scoring occlusion" in r.stderr


def test_sanity_prints_its_table_once(d):
    r = invoke("sanity", d / "tiny.onnx", d / "pic.png", "-m", "occlusion", "--out", d / "o")
    assert r.exit_code == 0, r.output
    assert r.output.count("random layers") == 1 and r.output.count("down to") == 1  # today: a second copy, live
