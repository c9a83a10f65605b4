"""Reading tables (onnxai/tables/data.py): CSV errors name the line and column, row lists, feature names."""

import pytest

import onnxai
from onnxai import tables


def _write(path, text):
    path.write_text(text)
    return path


def test_csv_errors(tmp_path):
    ok = _write(tmp_path / "ok.csv", "a,b,c\n1,2,3\n4,5,6\n")
    X, names = tables.read_table(ok)
    assert names == ["a", "b", "c"] and X.shape == (2, 3)
    with pytest.raises(onnxai.InputError, match="has 3 columns but the model takes 4"):
        tables.read_table(ok, expect=4)
    bad = _write(tmp_path / "bad.csv", "a,b,c\n1,2,3\n4,x5,6\n")
    with pytest.raises(onnxai.InputError, match=r"line 3, b: 'x5' is not a number"):
        tables.read_table(bad)
    ragged = _write(tmp_path / "ragged.csv", "1,2,3\n4,5\n")
    with pytest.raises(onnxai.InputError, match="line 2: 2 columns where the table has 3"):
        tables.read_table(ragged)
    with pytest.raises(onnxai.InputError, match="row 7 does not exist: the table has 2 rows"):
        tables.parse_rows("0,7", 2)
    with pytest.raises(onnxai.InputError, match="not a row number"):
        tables.parse_rows("0,x", 2)
    assert tables.parse_rows("1-3,0", 5) == [1, 2, 3, 0]
    with pytest.raises(onnxai.InputError, match="2 feature names were given for 3 columns"):
        tables.read_table(ok, feature_names="p,q")


def test_unreadable_tables_say_what_to_fix(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"a,b\n1,\xe9\n")
    with pytest.raises(onnxai.InputError, match=r"latin.csv is not UTF-8 text \(byte 6"):
        tables.read_table(latin)
    huge = _write(tmp_path / "huge.csv", "a,b\n1," + "9" * 200_000 + "\n")
    with pytest.raises(onnxai.InputError, match=r"cannot read .*huge.csv as the CSV table \(field larger"):
        tables.read_table(huge)
    with pytest.raises(onnxai.InputError, match="is a folder; give the table file"):
        tables.read_table(tmp_path)
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(b"PAR1 not really")
    with pytest.raises(onnxai.InputError, match=r"cannot read .*fake.parquet as Parquet \("):
        tables.read_table(fake)

