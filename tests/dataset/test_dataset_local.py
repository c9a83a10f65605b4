"""The local engine: the store's rows against single explanations, resuming, interruption, bad items,
bad input, and tables in row chunks."""

import json

import numpy as np
import pandas as pd
import pytest

import onnx_models
import onnxai
from onnxai import dataset
from onnxai.dataset import item_seed, map_array, sources
from onnxai.errors import InputError
from onnxai.tables import summarise


def run(files, out, methods=("grad-cam", "lime"), **kw):
    if "lime" in methods:
        kw.setdefault("num_samples", 20)
    return onnxai.explain_dataset(files["conv"], files["pics"], methods=list(methods), out=out, progress=False, **kw)


def test_folder_rows_equal_single_explanations(files, tmp_path):
    s = run(files, tmp_path / "out", batch_items=4)
    assert (s.done, s.skipped, s.failed) == (6, 0, 1)
    df = pd.read_parquet(tmp_path / "out")
    assert len(df) == 14 and set(df.method) == {"grad-cam", "lime"}
    bad = df[df.status == "error"]
    assert list(bad.item_id) == ["broken.png"] * 2 and bad.error.str.len().min() > 0
    model = onnxai.load(files["conv"], providers="cpu")
    for _, row in df[df.status == "ok"].iterrows():
        path = files["pics"] / row.item_id
        if row.method == "lime":  # the item's own seed: the same map as a single run with that seed
            assert row.seed == item_seed(0, row.item_id)
            e = onnxai.LIME(num_samples=20, seed=int(row.seed)).explain(model, path)
        else:
            e = onnxai.GradCAM().explain(model, path)
        assert row.target == e.target and row.label == e.label
        np.testing.assert_array_equal(map_array(row), e.map)
        np.testing.assert_array_equal(row.importance, e.importance)
        assert list(row.map_shape) == list(e.map.shape) and pd.isna(row.map_upsample)  # a 16x16 grid: as it is


def test_a_coarse_layer_map_is_stored_at_its_grid(tmp_path):
    """Grad-CAM on a layer of half the input's size: the store holds the 6x6 grid (map_size says the
    12x12 it covers) and map_array gives the method's map bit for bit."""
    from PIL import Image

    m, _ = onnx_models.cam_net()
    m = onnx_models.save(m, tmp_path / "cam.onnx")
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(3):
        Image.fromarray(onnx_models.cam_picture(seed=i)).save(pics / f"p{i}.png")
    pre = {"preprocess": {"resize": onnx_models.CAM_SIZE, "crop": onnx_models.CAM_SIZE}, "providers": "cpu"}
    onnxai.explain_dataset(m, pics, methods=["grad-cam"], out=tmp_path / "out", progress=False, model_options=pre)
    df = pd.read_parquet(tmp_path / "out")
    model = onnxai.load(m, **pre)
    assert len(df) == 3
    for _, row in df.iterrows():
        e = onnxai.GradCAM().explain(model, pics / row.item_id)
        assert list(row.map_shape) == e.extras["layer_grid"] == [6, 6] and list(row.map_size) == [12, 12]
        assert row.map_upsample == "bilinear" and len(row["map"]) == 6 * 6 * 4
        np.testing.assert_array_equal(map_array(row), e.map)
        np.testing.assert_array_equal(map_array(row, upsample=False), e.raw_map)


def test_resume_skips_what_is_stored_and_force_starts_over(files, tmp_path):
    out = tmp_path / "out"
    run(files, out)
    parts = sorted(out.glob("part-*.parquet"))
    again = run(files, out)
    assert (again.done, again.skipped, again.failed) == (0, 7, 0)
    assert sorted(out.glob("part-*.parquet")) == parts
    other = run(files, out, num_samples=30)  # lime's parameters changed: lime runs again, grad-cam does not
    df = pd.read_parquet(out)
    assert other.done == 6 and len(df) == 14 + 7
    assert df.groupby("method").params_hash.nunique().to_dict() == {"grad-cam": 1, "lime": 2}
    fresh = run(files, out, force=True)
    assert fresh.skipped == 0 and len(pd.read_parquet(out)) == 14


def test_interrupted_run_keeps_whole_parts_and_resumes(files, tmp_path, monkeypatch):
    from onnxai.dataset import worker

    out = tmp_path / "out"
    real = worker.Worker.first  # the forward passes: the main thread, where a Ctrl-C lands
    calls = []

    def flaky(self, items, decoded):
        calls.append(len(items))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, items, decoded)

    monkeypatch.setattr(worker.Worker, "first", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(files, out, methods=["grad-cam"], batch_items=2)
    monkeypatch.setattr(worker.Worker, "first", real)
    assert not list(out.glob(".*.tmp"))
    assert len(pd.read_parquet(out)) == 4  # the two finished batches
    s = run(files, out, methods=["grad-cam"], batch_items=2)
    df = pd.read_parquet(out)
    assert s.skipped == 4 and len(df) == 7 and df.item_id.is_unique


def test_bad_input_says_so_and_keeps_the_store(files, tmp_path):
    out = tmp_path / "out"
    run(files, out, methods=["grad-cam"])
    before = {p: p.read_bytes() for p in out.iterdir() if p.is_file()}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="does not exist"):
        onnxai.explain_dataset(files["conv"], tmp_path / "nope", out=out, force=True)
    with pytest.raises(InputError, match="holds no pictures"):
        onnxai.explain_dataset(files["conv"], empty, out=out, force=True)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="2 feature columns.*takes 4"):
        onnxai.explain_dataset(files["mlp"], wrong, methods=["kernel-shap"], background=files["train"], out=out,
                               force=True)
    with pytest.raises(InputError, match="explains pictures"):
        onnxai.explain_dataset(files["mlp"], files["rows"], methods=["grad-cam"], out=out, force=True)
    with pytest.raises(InputError, match="not a parameter"):
        run(files, out, methods=["grad-cam"], force=True, window=3)
    assert {p: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_unreadable_picture_list(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_bytes(b"\xe9t\xe9.png\n")
    with pytest.raises(InputError, match=r"list.txt is not UTF-8 text"):
        sources.list_pictures(lst)


def test_a_damaged_params_record_says_so_and_force_starts_over(files, tmp_path):
    out = tmp_path / "out"
    run(files, out, methods=["grad-cam"])
    (out / "_params.json").write_text("{bad")
    parts = sorted(p.name for p in out.glob("part-*.parquet"))
    with pytest.raises(InputError, match=r"_params.json \(the store's record of parameters\) is damaged .*--force"):
        run(files, out, methods=["grad-cam"])
    assert sorted(p.name for p in out.glob("part-*.parquet")) == parts  # nothing removed
    s = run(files, out, methods=["grad-cam"], force=True)
    assert (s.done, s.failed) == (6, 1) and json.loads((out / "_params.json").read_text())

def test_list_with_missing_files_and_targets(files, tmp_path):
    lst = tmp_path / "list.csv"
    lst.write_text(f"path,target\n{files['pics'] / 'p0.png'},2\n{files['pics'] / 'p1.png'},\nmissing.png,\n")
    s = onnxai.explain_dataset(files["conv"], lst, methods=["cam"], out=tmp_path / "out", progress=False)
    df = pd.read_parquet(tmp_path / "out").set_index("item_id")
    assert (s.done, s.failed) == (2, 1)
    assert df.loc[str(files["pics"] / "p0.png"), "target"] == 2
    assert "not found" in df.loc["missing.png", "error"]


def test_table_in_row_chunks_equals_one_call(files, tmp_path):
    out = tmp_path / "out"
    plan = dataset.make_plan(files["mlp"], files["rows"], ["kernel-shap", "lime"], out, background=files["train"],
                             params={"num_samples": 64}, chunk_rows=16)
    s = dataset.run(plan, "local", progress=False)
    assert (s.done, s.failed) == (39, 1)
    df = pd.read_parquet(out)
    assert df[df.status == "error"].item_id.tolist() == ["7", "7"]
    model = onnxai.load(files["mlp"], providers="cpu")
    train = np.loadtxt(files["train"], delimiter=",", skiprows=1)
    X = np.delete(np.loadtxt(files["rows"], delimiter=",", skiprows=1), 7, axis=0)
    ks = onnxai.KernelSHAP(num_samples=64, background=summarise(train, 10)).explain(model, X)
    got = df[(df.method == "kernel-shap") & (df.status == "ok")].sort_values("item_id", key=lambda c: c.astype(int))
    np.testing.assert_array_equal(np.stack([map_array(r) for _, r in got.iterrows()]), ks.values.astype(np.float32))
    row = df[(df.method == "lime-tabular") & (df.item_id == "3")].iloc[0]  # per-row seed, one row at a time
    lt = onnxai.LimeTabular(background=train, num_samples=64, seed=item_seed(0, "3")).explain(model, X[3:4])
    np.testing.assert_array_equal(map_array(row), lt.values[0].astype(np.float32))


def test_a_bad_cell_late_in_a_csv_keeps_the_store_and_resumes(files, tmp_path, monkeypatch):
    # pyarrow types a CSV's columns from its first block; a later cell that does not convert failed inside
    # the run with pyarrow's own exception
    monkeypatch.setattr(sources.TableSource, "csv_block_bytes", 1 << 10)
    rng = np.random.default_rng(3)
    lines = [",".join(f"{v:.4f}" for v in r) for r in rng.standard_normal((300, 4))]
    good = "a,b,c,d\n" + "\n".join(lines) + "\n"
    lines[250] = "1,abc,2,3"
    rows = tmp_path / "late.csv"
    rows.write_text("a,b,c,d\n" + "\n".join(lines) + "\n")
    out = tmp_path / "out"

    def go():
        plan = dataset.make_plan(files["mlp"], rows, ["kernel-shap"], out, background=files["train"],
                                 params={"num_samples": 32}, chunk_rows=16)
        return dataset.run(plan, "local", progress=False)

    with pytest.raises(InputError, match=r"late.csv: reading the rows after the first [\d,]+ failed .*'abc'.*"
                                         "rows already explained stay in the store"):
        go()
    kept = len(pd.read_parquet(out))
    assert 0 < kept < 250
    rows.write_text(good)
    s = go()
    assert s.done == 300 - kept and len(pd.read_parquet(out)) == 300


def test_std_error_column_nbdt_and_overlay_names(files, tmp_path):
    """The store's std_error column is filled from Explanation.stderr; NBDT (its own first pass and its
    own "top1") runs item by item; overlays of "a/b.png" and "a_b.png" do not share a file."""
    from onnxai.dataset.store import overlay_name

    assert overlay_name("a/b.png", "lime", 1) != overlay_name("a_b.png", "lime", 1)
    assert len(overlay_name("x/" * 200 + "p.png", "grad-cam", 3)) < 120
    s = run(files, tmp_path / "out", methods=("lime", "nbdt"), surrogate="ridge", num_samples=120)
    df = pd.read_parquet(tmp_path / "out")
    ok = df[df.status == "ok"]
    assert s.failed == 1 and set(ok.method) == {"lime", "nbdt"}, df.error.tolist()  # only broken.png fails
    assert (ok.method == "nbdt").sum() == (ok.method == "lime").sum() == 6
    lime = ok[ok.method == "lime"]
    for se, imp in zip(lime.std_error, lime.importance):  # the ridge sandwich: one finite value per feature
        assert se is not None and len(se) == len(imp) and np.isfinite(se).all() and (se > 0).any()


def test_warm_builds_the_layer_session_and_leaves_failures_to_the_items(files, tmp_path):
    """Worker.warm builds the session exposing Grad-CAM's layer before any picture (the runner does it
    while the first batch decodes); a layer that does not exist does not stop the run there: every
    item gets an error row naming it."""
    from onnxai.dataset.worker import Job, Worker

    w = Worker(Job(str(files["conv"]), {"providers": "cpu"}, [("grad-cam", {}, "k")]))
    assert not w.model._patched
    w.warm()
    assert len(w.model._patched) == 1
    plan = dataset.make_plan(files["conv"], files["pics"], ["grad-cam"], tmp_path / "planned", warm=True,
                             model_options={"providers": "cpu"})
    plan.warming.result(timeout=60)  # make_plan(warm=True): the same session, built while planning
    assert len(plan.model._patched) == 1
    assert dataset.make_plan(files["conv"], files["pics"], ["grad-cam"], tmp_path / "p2").warming is None
    # the model's id hashed beside the load (a Future) or given: the same store keys as hashed in line
    from onnxai.dataset.store import model_id

    keys = [key for _, _, key in plan.job.methods]
    given = dataset.make_plan(plan.model, files["pics"], ["grad-cam"], tmp_path / "p3", model_sha=model_id(files["conv"]))
    hashed = dataset.make_plan(plan.model, files["pics"], ["grad-cam"], tmp_path / "p4",
                               model_sha=dataset.plan.hash_model(files["conv"]))
    assert [k for _, _, k in given.job.methods] == [k for _, _, k in hashed.job.methods] == keys
    s = run(files, tmp_path / "bad", methods=["grad-cam"], method_params={"grad-cam": {"layer": "no_such_tensor"}})
    df = pd.read_parquet(tmp_path / "bad")
    assert s.failed == 7 and (df.status == "error").all()
    assert df[df.item_id != "broken.png"].error.str.contains("no_such_tensor").all()


def test_predict_rows_for_pictures_and_table_rows(files, tmp_path):
    """predict: one row per item with the top class, its probability and the whole probability vector
    as the map; beside Grad-CAM it takes the probabilities of Grad-CAM's own first pass (no second
    pass), alone it runs the plain session; table rows get one pass per chunk, a NaN row an error."""
    model = onnxai.load(files["conv"], providers="cpu")
    s = run(files, tmp_path / "both", methods=("predict", "grad-cam"), batch_items=4)
    assert (s.done, s.failed) == (6, 1)
    df = pd.read_parquet(tmp_path / "both")
    ok = df[df.status == "ok"]
    pred, gc = (ok[ok.method == m].set_index("item_id").sort_index() for m in ("predict", "grad-cam"))
    assert len(pred) == 6 and list(pred.index) == list(gc.index)
    for item, row in pred.iterrows():
        probs = model.scores(model.prepare(files["pics"] / item)[0])[0]
        stored = map_array(row)
        assert stored.shape == probs.shape and row.target == int(np.argmax(probs)) == gc.loc[item, "target"]
        np.testing.assert_allclose(stored, probs, rtol=1e-5, atol=1e-7)
        assert row.score == stored[int(row.target)] == gc.loc[item, "score"]  # Grad-CAM's pass, shared
        top = json.loads(row.extras)["top"]
        assert [t[0] for t in top] == list(np.argsort(-probs, kind="stable")[:3])  # 3 classes: top 5 -> 3
        assert top[0][1] == row.label
    alone = run(files, tmp_path / "alone", methods=("predict",), target=1)
    got = pd.read_parquet(tmp_path / "alone")
    assert alone.done == 6 and (got[got.status == "ok"].target == 1).all()
    t = onnxai.explain_dataset(files["mlp"], files["rows"], methods=["predict"], out=tmp_path / "table",
                               progress=False, model_options={"providers": "cpu"})
    tab = pd.read_parquet(tmp_path / "table")
    assert (t.done, t.failed) == (39, 1) and tab[tab.status == "error"].item_id.tolist() == ["7"]
    X = files["X"]
    mlp = onnxai.load(files["mlp"], providers="cpu")
    want = mlp.scores(np.delete(X, 7, axis=0))
    got_rows = tab[tab.status == "ok"].sort_values("item_id", key=lambda c: c.astype(int))
    np.testing.assert_allclose(np.stack([map_array(r) for _, r in got_rows.iterrows()]), want, rtol=1e-5, atol=1e-7)
    assert (got_rows.target.to_numpy() == want.argmax(1)).all()
