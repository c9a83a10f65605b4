"""``onnxai predict`` on table models: one line per row (class, probability), --json with every class,
CSV and Parquet rows, checked against Model.scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import onnx_models
import onnxai
from onnxai.cli import main


@pytest.fixture(scope="module")
def forest_file(tmp_path_factory, forest, cancer):
    d = tmp_path_factory.mktemp("predict_tables")
    X, _ = cancer
    onnx_models.save(onnx_models.sklearn_onnx(forest, X), d / "forest.onnx")
    rows = X[:5]
    (d / "rows.csv").write_text("\n".join(",".join(repr(float(v)) for v in r) for r in rows) + "\n")
    return d, rows


def test_predict_table_rows(forest_file):
    d, rows = forest_file
    model = onnxai.load(d / "forest.onnx", providers="cpu")
    probs = model.scores(rows)
    r = CliRunner().invoke(main, ["predict", "--providers", "cpu", str(d / "forest.onnx"), str(d / "rows.csv")])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 5
    for i, line in enumerate(lines):
        c = int(np.argmax(probs[i]))
        assert line == f"{d / 'rows.csv'} row {i}: {model.label(c)} {probs[i, c]:.4f}"
    r = CliRunner().invoke(main, ["predict", "--providers", "cpu", str(d / "forest.onnx"), str(d / "rows.csv"), "--json"])
    assert r.exit_code == 0, r.output
    payload = json.loads(r.output)
    assert [p["row"] for p in payload] == list(range(5))
    np.testing.assert_allclose([p["probabilities"] for p in payload], probs, atol=1e-6)
    assert all(len(p["top"]) == 2 and p["top"][0]["index"] == int(np.argmax(q)) for p, q in zip(payload, probs))


def test_predict_table_parquet_and_errors(forest_file, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    d, rows = forest_file
    pq.write_table(pa.table({f"f{j}": rows[:, j] for j in range(rows.shape[1])}), tmp_path / "rows.parquet")
    r = CliRunner().invoke(main, ["predict", "--providers", "cpu", str(d / "forest.onnx"), str(tmp_path / "rows.parquet"), "--top", "2"])
    assert r.exit_code == 0, r.output
    assert len(r.output.strip().splitlines()) == 5 and all(line.count(" 0.") + line.count(" 1.") == 2
                                                           for line in r.output.strip().splitlines())
    (tmp_path / "narrow.csv").write_text("1,2,3\n")
    r = CliRunner().invoke(main, ["predict", "--providers", "cpu", str(d / "forest.onnx"), str(tmp_path / "narrow.csv")])
    assert r.exit_code == 2 and "has 3 columns but the model takes 30 features" in r.output
