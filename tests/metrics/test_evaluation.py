"""Whole evaluations: every method and the random row, saved as CSV/JSON, and the evaluate command."""

import json

import pytest
from click.testing import CliRunner
from PIL import Image

import onnxai
from onnxai import metrics
from onnxai.cli import main
import onnx_models
from region_case import REGION, SIZE, _cli_files


def test_evaluate_gathers_every_method_and_the_random_row(tmp_path, region_model):
    model, mask = region_model
    pics = [onnx_models.region_picture(SIZE, REGION, seed=s) for s in range(2)]
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
        ev.save(tmp_path / "ev", force=False)


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


@pytest.mark.parametrize("sigma", [float("nan"), -5.0, float("inf")])
def test_a_blur_that_is_not_a_width_is_refused_before_any_work(region_model, sigma):
    calls = []
    with pytest.raises(onnxai.InputError, match="blur_sigma must be a number >= 0 and <= 1000"):
        metrics.evaluate(region_model[0], [onnx_models.region_picture()], ["occlusion"], blur_sigma=sigma,
                         on_score=calls.append)
    assert calls == []
