"""The Ray engine against a real local cluster (ray.init(num_cpus=2), 2 actors), shut down afterwards:
the store equals the local engine's bit for bit, pictures and tables; and its one-line errors."""

import sys

import numpy as np
import pandas as pd
import pytest

import onnxai
from onnxai import dataset
from onnxai.dataset import map_array, ray_engine
from onnxai.errors import InputError


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, runtime_env=ray_engine.runtime_env(), log_to_driver=False, include_dashboard=False)
    yield ray
    ray.shutdown()


def _stored(out):
    df = pd.read_parquet(out)
    return df.sort_values(["method", "item_id", "target"]).reset_index(drop=True)


def _same(a, b):
    assert list(a.item_id) == list(b.item_id) and list(a.status) == list(b.status)
    for (_, x), (_, y) in zip(a.iterrows(), b.iterrows()):
        assert str((x.method, x.target, x.seed, x.params_hash)) == str((y.method, y.target, y.seed, y.params_hash))
        if x.status == "ok":
            assert np.array_equal(map_array(x), map_array(y)), (x.item_id, x.method)


def test_workers_import_this_checkout(ray_cluster):
    @ray_cluster.remote
    def where():
        import onnxai as o

        return o.__file__

    assert ray_cluster.get(where.remote()) == onnxai.__file__


def test_ray_store_equals_local_bit_for_bit(ray_cluster, files, tmp_path):
    kw = dict(methods=["grad-cam", "lime", "predict"], num_samples=20, progress=False)
    onnxai.explain_dataset(files["conv"], files["pics"], out=tmp_path / "local", batch_items=4, **kw)
    s = onnxai.explain_dataset(files["conv"], files["pics"], out=tmp_path / "ray", engine="ray", workers=2,
                               batch_items=2, **kw)
    assert (s.done, s.failed) == (6, 1)
    _same(_stored(tmp_path / "local"), _stored(tmp_path / "ray"))
    assert ray_cluster.data.read_parquet(str(tmp_path / "ray")).count() == 21
    again = onnxai.explain_dataset(files["conv"], files["pics"], out=tmp_path / "ray", engine="ray", **kw)
    assert (again.done, again.skipped) == (0, 7)


def test_ray_table_equals_local(ray_cluster, files, tmp_path):
    for engine in ("local", "ray"):
        plan = dataset.make_plan(files["mlp"], files["rows"], ["kernel-shap", "lime", "predict"], tmp_path / engine,
                                 background=files["train"], params={"num_samples": 64}, chunk_rows=16)
        s = dataset.run(plan, engine, progress=False, **({"workers": 2} if engine == "ray" else {}))
        assert (s.done, s.failed) == (39, 1)
    _same(_stored(tmp_path / "local"), _stored(tmp_path / "ray"))


def test_ray_errors_are_one_line(files, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    with pytest.raises(InputError, match="does not answer"):
        ray_engine.connect("127.0.0.1:1")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InputError, match=r"pip install 'onnxai\[ray\]'"):
        onnxai.explain_dataset(files["conv"], files["pics"], methods=["cam"], out=tmp_path / "o", engine="ray")
