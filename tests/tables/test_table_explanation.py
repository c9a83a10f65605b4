"""Table explanations saved as CSV/JSON/PNG, and the command line on a CSV (onnxai/tables/explanation.py,
plots.py, cli/tables.py)."""

import json

import onnx
import pytest

import onnxai
from onnx_models import linear_table_net, sklearn_onnx


def test_save_writes_csv_json_pngs_and_refuses_to_overwrite(tmp_path, cancer, forest):
    X, _ = cancer
    model = onnxai.load(sklearn_onnx(forest, X), providers="cpu")
    e = onnxai.KernelSHAP(nsamples=200, background=X[:50]).explain(model, X[:2])
    paths = e.save(tmp_path / "expl")
    assert [p.suffix for p in paths] == [".csv", ".json", ".png", ".png", ".png", ".png"]
    from PIL import Image

    assert Image.open(paths[2]).size[0] == 640
    data = json.loads(paths[1].read_text())
    assert data["class_names"] == ["0", "1"] and len(data["values"]) == 2
    with pytest.raises(onnxai.InputError, match="exists"):
        e.save(tmp_path / "expl", force=False)  # the library overwrites by default; force=False refuses


def test_cli_explain_csv(tmp_path, cancer, forest):
    from click.testing import CliRunner

    from onnxai.cli import main

    X, _ = cancer
    mpath = tmp_path / "rf.onnx"
    mpath.write_bytes(sklearn_onnx(forest, X).SerializeToString())
    names = [f"f{j}" for j in range(30)]
    data = tmp_path / "data.csv"
    data.write_text(",".join(names) + "\n" + "\n".join(",".join(f"{v:.6g}" for v in r) for r in X[:12]))
    train = tmp_path / "train.csv"
    train.write_text("\n".join(",".join(f"{v:.6g}" for v in r) for r in X[::3]))
    out = tmp_path / "out"
    args = ["explain", str(mpath), str(data), "--rows", "0,5,9", "--method", "kernel-shap", "--background",
            str(train), "--nsamples", "300", "--out", str(out), "--providers", "cpu"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    files = sorted(p.name for p in out.iterdir())
    assert "data_kernel-shap.csv" in files and "data_kernel-shap_row5_waterfall.png" in files
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "exists" in r.output
    r = CliRunner().invoke(main, args[:4] + ["0,50"] + args[5:] + ["--force"])
    assert r.exit_code == 2 and "row 50 does not exist" in r.output
    r = CliRunner().invoke(main, ["explain", str(mpath), str(data), "--rows", "1", "--method", "lime",
                                  "--background", str(train), "--samples", "500", "--out", str(out),
                                  "--providers", "cpu"])
    assert r.exit_code == 0, r.output
    assert (out / "data_lime_row1_bar.png").exists()


def test_cli_says_a_picture_is_no_table(tmp_path):
    from click.testing import CliRunner
    from onnxai.cli import main

    path = tmp_path / "lin.onnx"
    onnx.save(linear_table_net(), str(path))
    r = CliRunner().invoke(main, ["explain", str(path), "samples/chelsea.png", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "samples/chelsea.png is a picture, but this model takes table rows" in r.output


def test_cli_kernel_shap_background_size_and_summarise(tmp_path, cancer, forest):
    """The CLI used to k-means every background CSV to 10 rows; --background-size and --summarise choose.
    And inspect does not claim that Grad-CAM / Score-CAM work on a tree model."""
    from click.testing import CliRunner
    from onnxai.cli import main

    X, _ = cancer
    mpath = tmp_path / "rf.onnx"
    mpath.write_bytes(sklearn_onnx(forest, X).SerializeToString())
    r = CliRunner().invoke(main, ["inspect", str(mpath), "--providers", "cpu"])
    assert r.exit_code == 0 and "CAMs       none: a table model" in r.output and "Grad-CAM" not in r.output
    data, train = tmp_path / "data.csv", tmp_path / "train.csv"
    data.write_text("\n".join(",".join(f"{v:.6g}" for v in row) for row in X[:2]))
    train.write_text("\n".join(",".join(f"{v:.6g}" for v in row) for row in X[::5]))
    base = ["explain", str(mpath), str(data), "--method", "kernel-shap", "--background", str(train),
            "--samples", "200", "--providers", "cpu"]
    for extra, rows in [([], 10), (["--background-size", "7", "--summarise", "sample"], 7),
                        (["--summarise", "all"], len(X[::5]))]:
        out = tmp_path / f"out{rows}"
        r = CliRunner().invoke(main, base + ["--out", str(out)] + extra)
        assert r.exit_code == 0, r.output
        facts = json.loads((out / "data_kernel-shap.json").read_text())
        assert facts["extras"]["background_rows"] == rows, extra
        if extra:
            assert facts["params"]["summarise"] == extra[-1]
    r = CliRunner().invoke(main, base[:4] + ["lime"] + base[5:] + ["--out", str(tmp_path / "x"), "--background-size", "5"])
    assert r.exit_code == 2 and "--background-size (background_size) is not a parameter of lime" in r.output
