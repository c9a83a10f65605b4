"""The store keeps a CAM's map at its layer's grid when scaling it up gives the method's map bit for
bit (map_upsample says how), the full map otherwise; a store from an older layout is refused."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import onnx_models
import onnxai
from onnxai.dataset.store import Store, compact_map, map_array
from onnxai.errors import InputError


def _row(e, how):
    stored, size, how = compact_map(e.map, e.raw_map, how)
    return {"map": np.ascontiguousarray(stored, "<f4").tobytes(), "map_shape": list(stored.shape),
            "map_size": size, "map_upsample": how}


@pytest.mark.parametrize("method, params, compact", [
    ("cam", {}, True),                                   # signed, no ReLU
    ("cam", {"relu": True, "align_corners": True}, True),
    ("grad-cam", {}, True),
    ("grad-cam", {"align_corners": True}, True),
    ("score-cam", {"relu_first": True}, True),           # up(ReLU(low)): rebuilt from the clipped grid
    ("score-cam", {"relu_first": False}, False),         # ReLU(up(low)): not a function of the clipped grid
    ("score-cam", {"relu_first": True, "align_corners": True}, True),  # (align_corners is the masks')
    ("nbdt", {}, True),
])
def test_layer_maps_are_stored_coarse_only_when_exact(method, params, compact):
    model, _, x, crop = onnx_models.cam_setup()
    m = onnxai.make_method(method, **params)
    e = m.explain(model, onnx_models.cam_picture())
    row = _row(e, m.raw_upsample())
    np.testing.assert_array_equal(map_array(row), e.map)  # bit for bit, whichever way it was stored
    if compact:
        assert row["map_shape"] == list(e.raw_map.shape) and row["map_size"] == list(e.map.shape)
        aligned = params.get("align_corners") and method != "score-cam"
        assert row["map_upsample"] == ("bilinear-align-corners" if aligned else "bilinear")
    else:
        assert row["map_shape"] == list(e.map.shape) and row["map_upsample"] is None


def test_map_array_refuses_an_unknown_upsampling():
    row = {"map": np.zeros(4, "<f4").tobytes(), "map_shape": [2, 2], "map_size": [8, 8], "map_upsample": "lanczos"}
    with pytest.raises(InputError, match="map_upsample 'lanczos' is not one this onnxai knows"):
        map_array(row)
    assert map_array(row, upsample=False).shape == (2, 2)


def test_a_store_of_the_older_layout_is_refused_not_mixed(files, tmp_path):
    from onnxai import dataset

    old = pa.table({"item_id": ["a"], "params_hash": ["k"], "map": [b""], "map_shape": [[0]],
                    "status": ["error"]})
    pq.write_table(old, tmp_path / "part-old.parquet")
    before = (tmp_path / "part-old.parquet").read_bytes()
    with pytest.raises(InputError, match=r"written by an older onnxai \(no .*map_size, map_upsample.*--force"):
        Store(tmp_path).stored()
    with pytest.raises(InputError, match="written by an older onnxai"):  # checked before any error row is dropped
        dataset.make_plan(files["conv"], files["pics"], ["cam"], tmp_path, retry_errors=True)
    assert (tmp_path / "part-old.parquet").read_bytes() == before


def test_compact_map_keeps_the_full_map_without_a_rule_or_a_coarser_grid():
    full, raw = np.ones((8, 8), np.float32), np.ones((2, 2), np.float32)
    assert compact_map(full, raw, None)[0] is full                  # the method made it otherwise
    assert compact_map(full, None, "bilinear")[0] is full           # no raw map
    assert compact_map(full, np.ones((8, 8), np.float32), "bilinear")[0] is full  # not coarser
    stored, size, how = compact_map(full, raw, "bilinear")
    assert stored is raw and size == [8, 8] and how == "bilinear"


def test_map_array_is_reachable_from_a_plain_import():
    """A store is often read in another process than the one that wrote it: ``import onnxai`` alone
    must give ``onnxai.dataset.map_array`` (the README's line)."""
    import subprocess
    import sys

    code = "import onnxai; print(onnxai.dataset.map_array.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "map_array", out.stderr
