"""Tabular ONNX models (skl2onnx ZipMap, string labels, one input per column), tables, LIME for tables, CLI."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxai
from onnxai import tables
from onnxai.methods.lime_tabular import LimeTabular

skl2onnx = pytest.importorskip("skl2onnx")
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X.astype(np.float32).astype(np.float64), y


@pytest.fixture(scope="module")
def forest(cancer):
    X, y = cancer
    return RandomForestClassifier(30, max_depth=6, random_state=0).fit(X, y)


def _onnx(est, X, zipmap=True):
    return skl2onnx.to_onnx(est, X[:1].astype(np.float32), options={id(est): {"zipmap": zipmap}}, target_opset=17)


@pytest.mark.parametrize("zipmap", [True, False])
def test_forest_probabilities_equal_predict_proba(cancer, forest, zipmap):
    X, _ = cancer
    model = onnxai.load(_onnx(forest, X, zipmap), providers="cpu")
    assert not model.input.is_image and model.input.shape == (None, 30)
    p = model.scores(X.astype(np.float32))
    assert p.shape == (X.shape[0], 2)
    assert np.abs(p - forest.predict_proba(X.astype(np.float32))).max() <= 1e-5
    assert model.labels == ["0", "1"]  # classlabels_int64s, the order of forest.classes_


def test_string_labels_and_class_order(cancer):
    X, y = cancer
    names = np.array(["malignant", "benign"])[y]  # sklearn sorts: classes_ = ['benign', 'malignant']
    rf = RandomForestClassifier(10, max_depth=4, random_state=0).fit(X, names)
    for zipmap in (True, False):
        model = onnxai.load(_onnx(rf, X, zipmap), providers="cpu")
        assert model.labels == list(rf.classes_) == ["benign", "malignant"]
        assert np.abs(model.scores(X[:50].astype(np.float32)) - rf.predict_proba(X[:50].astype(np.float32))).max() <= 1e-5
        assert model.class_index("malignant") == 1


def test_one_input_per_column():
    # three inputs: a float, an int64 and a float (n, 2) block, concatenated and scored linearly
    w = np.array([[1.0, -1.0], [0.5, 0.25], [2.0, 0.0], [-1.0, 3.0]], np.float32)
    nodes = [helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
             helper.make_node("Concat", ["a", "bf", "c"], ["x"], axis=1),
             helper.make_node("MatMul", ["x", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["p"], axis=1)]
    g = helper.make_graph(nodes, "cols",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1]),
                           helper.make_tensor_value_info("b", TensorProto.INT64, [None, 1]),
                           helper.make_tensor_value_info("c", TensorProto.FLOAT, [None, 2])],
                          [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 2])],
                          initializer=[numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    model = onnxai.load(m, providers="cpu")
    assert model.input.shape == (None, 4) and [c[0] for c in model.columns] == ["a", "b", "c"]
    X = np.array([[0.5, 2, 1.0, -1.0], [1.0, 3, 0.0, 0.5]])
    z = X @ w
    ref = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.scores(X), ref, rtol=1e-5)
    e = onnxai.KernelSHAP(nsamples=14, background=np.zeros((1, 4))).explain(model, X)
    np.testing.assert_allclose(e.values.sum(axis=1), e.predictions - e.base_values, atol=1e-9)


def test_kernel_shap_agrees_with_shap_package(cancer, forest):
    shap = pytest.importorskip("shap")
    from shap.utils._legacy import DenseData

    X, y = cancer
    model = onnxai.load(_onnx(forest, X, zipmap=True), providers="cpu")
    ks = onnxai.KernelSHAP(nsamples=6000, background=X, background_size=10, seed=0)
    rows = X[[0, 100]]
    e = ks.explain(model, rows)
    assert ks.background is X  # the user's rows are kept; the summary is cached beside them
    bg = ks.background_for(model, rows)
    ref_bg = shap.kmeans(X, 10)  # the same summary: same centres, same weights
    np.testing.assert_allclose(bg.data, ref_bg.data)
    np.testing.assert_allclose(bg.weights, ref_bg.weights / ref_bg.weights.sum())
    sess = model.session

    def f(Z):
        return sess.run([model.output], {model.input.name: Z.astype(np.float32)})[0]

    ex = shap.KernelExplainer(f, DenseData(bg.data, [str(i) for i in range(30)], None, bg.weights))
    ref = np.asarray(ex.shap_values(rows, nsamples=6000, l1_reg=False, silent=True))  # (2, 30, 2)
    assert np.abs(e.values - ref).max() <= 0.01
    np.testing.assert_allclose(e.base_values, ex.expected_value, atol=1e-6)


def test_kernel_shap_equals_shap_package_exactly_when_enumerated(cancer):
    shap = pytest.importorskip("shap")
    from shap.utils._legacy import DenseData

    X, y = cancer
    Xs = X[:, :10]
    rf = RandomForestClassifier(20, max_depth=5, random_state=1).fit(Xs, y)
    model = onnxai.load(_onnx(rf, Xs, zipmap=True), providers="cpu")
    ks = onnxai.KernelSHAP(nsamples=2 ** 10, background=Xs, background_size=5)
    e = ks.explain(model, Xs[[3, 7]])
    bg = ks.background_for(model, Xs[[3, 7]])
    sess = model.session
    ex = shap.KernelExplainer(lambda Z: sess.run([model.output], {"X": Z.astype(np.float32)})[0],
                              DenseData(bg.data, [str(i) for i in range(10)], None, bg.weights))
    ref = np.asarray(ex.shap_values(Xs[[3, 7]], nsamples=2 ** 10, l1_reg=False, silent=True))
    assert np.abs(e.values - ref).max() <= 1e-6


# --------------------------------------------------------------------------- tables and errors


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


def test_summaries():
    X = np.random.default_rng(0).standard_normal((100, 3))
    bg = tables.summarise(X, 7)
    assert bg.data.shape == (7, 3) and bg.weights.sum() == pytest.approx(1.0)
    assert all(np.isin(bg.data[:, j], X[:, j]).all() for j in range(3))  # snapped to real values
    s = tables.summarise(X, 5, "sample", seed=1)
    assert s.data.shape == (5, 3) and np.allclose(s.weights, 0.2)


def test_lime_tabular(cancer, forest):
    X, y = cancer
    model = onnxai.load(_onnx(forest, X), providers="cpu")
    lime = LimeTabular(X, num_samples=2000, seed=0)
    e = lime.explain(model, X[:2])
    assert e.values.shape == (2, 30, 2)
    # two classes summing to 1: the surrogates of the two classes are mirror images
    np.testing.assert_allclose(e.values[:, :, 0], -e.values[:, :, 1], atol=1e-6)
    # the most important features of the forest show up among LIME's largest weights
    top = np.argsort(-np.abs(e.values[0, :, 1]))[:8]
    assert len(set(top) & set(np.argsort(-forest.feature_importances_)[:8])) >= 3
    assert e.extras["kernel_width"] == pytest.approx(np.sqrt(30) * 0.75)


def test_save_writes_csv_json_pngs_and_refuses_to_overwrite(tmp_path, cancer, forest):
    X, _ = cancer
    model = onnxai.load(_onnx(forest, X), providers="cpu")
    e = onnxai.KernelSHAP(nsamples=200, background=X[:50]).explain(model, X[:2])
    paths = e.save(tmp_path / "expl")
    assert [p.suffix for p in paths] == [".csv", ".json", ".png", ".png", ".png", ".png"]
    from PIL import Image

    assert Image.open(paths[2]).size[0] == 640
    data = json.loads(paths[1].read_text())
    assert data["class_names"] == ["0", "1"] and len(data["values"]) == 2
    with pytest.raises(onnxai.InputError, match="exists"):
        e.save(tmp_path / "expl")


def test_cli_explain_csv(tmp_path, cancer, forest):
    from click.testing import CliRunner

    from onnxai.cli import main

    X, _ = cancer
    mpath = tmp_path / "rf.onnx"
    mpath.write_bytes(_onnx(forest, X).SerializeToString())
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


def test_explain_api_routes_lime_on_a_table_model_to_tabular_lime():
    import numpy as np
    import onnxai

    model = onnxai.load(_linear_model_for_api(), providers="cpu")
    X = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    with pytest.raises(onnxai.InputError, match="needs training rows"):
        onnxai.explain(model, X[:2], method="lime")
    res = onnxai.explain(model, X[:2], method="lime", background=X, num_samples=300)
    assert res.values.shape[:2] == (2, 3)


def _linear_model_for_api():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    W = np.array([[1.0, -1.0], [2.0, 0.0], [0.0, 0.5]], np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "lin",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
                          initializer=[numpy_helper.from_array(W, "W")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m


def test_cli_says_a_picture_is_no_table(tmp_path):
    from click.testing import CliRunner
    from onnxai.cli import main

    path = tmp_path / "lin.onnx"
    onnx.save(_linear_model_for_api(), str(path))
    r = CliRunner().invoke(main, ["explain", str(path), "samples/chelsea.png", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "samples/chelsea.png is a picture, but this model takes table rows" in r.output
