"""``onnxai explain-dataset``: the summary line, --strict, and one-line errors that leave the store alone."""

import pandas as pd
from click.testing import CliRunner

from onnxai.cli import main


def test_command_writes_store_and_summary(files, tmp_path):
    out = tmp_path / "out"
    args = ["explain-dataset", str(files["conv"]), str(files["pics"]), "--methods", "cam", "--out", str(out),
            "--no-progress", "--providers", "cpu", "--pictures"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "6 done, 0 skipped, 1 failed" in r.output
    assert len(pd.read_parquet(out)) == 7 and (out / "_index.html").read_text().count("<img") == 6
    r = CliRunner().invoke(main, args + ["--strict", "--force"])
    assert r.exit_code == 1 and "6 done" in r.output


def test_command_errors_are_one_line(files, tmp_path):
    r = CliRunner().invoke(main, ["explain-dataset", str(files["conv"]), str(tmp_path / "none"), "--out",
                                  str(tmp_path / "o")])
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()
    r = CliRunner().invoke(main, ["explain-dataset", str(files["conv"]), str(files["pics"]), "--out",
                                  str(tmp_path / "o"), "--engine", "ray", "--address", "127.0.0.1:1"])
    assert r.exit_code == 2 and "does not answer" in r.output
