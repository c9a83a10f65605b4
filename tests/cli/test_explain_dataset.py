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


def test_retry_errors_runs_the_failed_items_again_and_keeps_the_rest(files, tmp_path):
    """A broken picture is fixed: a plain rerun skips it (its error row is stored), --retry-errors runs
    it again for the methods given and replaces only those error rows; other rows stay as they were."""
    import shutil

    pics = tmp_path / "pics"
    shutil.copytree(files["pics"], pics)  # the session's folder stays as it is
    out = tmp_path / "out"
    base = ["explain-dataset", str(files["conv"]), str(pics), "--out", str(out), "--no-progress", "--providers", "cpu"]
    r = CliRunner().invoke(main, base + ["--methods", "cam,grad-cam"])
    assert r.exit_code == 0 and "6 done, 0 skipped, 1 failed" in r.output, r.output
    before = pd.read_parquet(out)
    shutil.copy(pics / "p0.png", pics / "broken.png")  # fixed
    r = CliRunner().invoke(main, base + ["--methods", "cam,grad-cam"])
    assert "0 done, 7 skipped, 0 failed" in r.output, r.output
    r = CliRunner().invoke(main, base + ["--methods", "grad-cam", "--retry-errors"])
    assert r.exit_code == 0 and "1 error row(s) removed" in r.output and "1 done, 6 skipped, 0 failed" in r.output, r.output
    after = pd.read_parquet(out)
    assert len(after) == len(before) == 14
    fixed = after[after.item_id == "broken.png"].set_index("method")
    assert fixed.loc["grad-cam", "status"] == "ok" and fixed.loc["cam", "status"] == "error"  # cam not asked
    keep = lambda df: df[df.item_id != "broken.png"].sort_values(["item_id", "method"]).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(after)[["item_id", "method", "status", "score"]],
                                  keep(before)[["item_id", "method", "status", "score"]])
    r = CliRunner().invoke(main, base + ["--methods", "cam", "--retry-errors"])
    assert "1 done, 6 skipped, 0 failed" in r.output and (pd.read_parquet(out).status == "ok").all()


def test_strict_counts_the_failures_an_earlier_run_left_in_the_store(files, tmp_path):
    """A rerun skips an item stored as an error; it says so, and --strict still exits 1 until
    --retry-errors has run it again successfully."""
    import shutil

    pics = tmp_path / "pics"
    shutil.copytree(files["pics"], pics)
    out = tmp_path / "out"
    base = ["explain-dataset", str(files["conv"]), str(pics), "--out", str(out), "--no-progress", "--providers", "cpu",
            "--methods", "cam"]
    assert CliRunner().invoke(main, base).exit_code == 0
    r = CliRunner().invoke(main, base + ["--strict"])
    assert r.exit_code == 1 and "0 done, 7 skipped, 0 failed" in r.output, r.output
    assert "1 item(s) failed in an earlier run (--retry-errors runs them again)" in r.output
    shutil.copy(pics / "p0.png", pics / "broken.png")  # fixed
    r = CliRunner().invoke(main, base + ["--strict", "--retry-errors"])
    assert r.exit_code == 0 and "1 done, 6 skipped, 0 failed" in r.output and "earlier run" not in r.output, r.output
