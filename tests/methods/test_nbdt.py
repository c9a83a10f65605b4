"""NBDT on a hand-built model whose six class vectors form two obvious groups (onnx_models.grouped_head_net):
the induced hierarchy, hard and soft inference against numpy computed here, the per-decision maps
against CAM, the hierarchy's JSON, names and metadata caches, the error without a linear head, and the
command line (explain --method nbdt, --method all, tree)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from PIL import Image

import onnxai
import onnx_models
from onnx_models import cam_forward, cam_load, cam_picture, grouped_head_net
from onnxai.cli import main
from onnxai.errors import InputError, LayerError
from onnxai.methods.nbdt import NBDT
from onnxai.methods.nbdt_tree import METADATA_KEY, Hierarchy, induce, read_names

GROUP_A, GROUP_B = {0, 1, 2}, {3, 4, 5}


@pytest.fixture(scope="module")
def grouped():
    """(Model, params, act (K, h, w) float64, logits (classes,) float64) for cam_picture()."""
    m, p = grouped_head_net()
    model = cam_load(m)
    x, _ = model.prepare(cam_picture())
    act, _, logits = cam_forward(x, p)
    return model, p, act[0], logits[0]


def hand_leaves(children, K):
    """node -> set of classes under it, from scikit-learn's children_ (leaves 0..K-1, merge i = K + i)."""
    under = {k: {k} for k in range(K)}
    for i, (a, b) in enumerate(children):
        under[K + i] = under[int(a)] | under[int(b)]
    return under


def hand_scores(under, F, c, f, vectors):
    """Node score = mean logit of its classes ("logits") or <f, mean of unit rows> ("normalised")."""
    F = F.astype(np.float64)
    if vectors == "normalised":
        U = F / np.linalg.norm(F, axis=1, keepdims=True)
        return {n: float(f @ U[sorted(s)].mean(axis=0)) for n, s in under.items()}
    logits = F @ f + c.astype(np.float64)
    return {n: float(logits[sorted(s)].mean()) for n, s in under.items()}


# --------------------------------------------------------------------------- the hierarchy


@pytest.mark.parametrize("normalise", [True, False])
def test_root_splits_the_two_groups(normalise):
    _, p = grouped_head_net()
    h = induce(p["F"], normalise=normalise)
    a, b = h.kids(h.root)
    assert {frozenset(h.leaves(a)), frozenset(h.leaves(b))} == {frozenset(GROUP_A), frozenset(GROUP_B)}
    assert h.root == 10 and sorted(h.leaves(h.root)) == list(range(6))
    assert sorted(np.concatenate([h.leaves(n) for n in range(6)])) == list(range(6))


def test_the_model_tree_is_read_off_the_graph_and_splits_the_groups(grouped):
    model = grouped[0]
    h = NBDT().tree(model).h  # the weight comes from the ONNX head, not from params
    assert {frozenset(h.leaves(c)) for c in h.kids(h.root)} == {frozenset(GROUP_A), frozenset(GROUP_B)}
    e = NBDT().explain(model, cam_picture())
    assert e.extras["path"][0]["node"] == h.root and e.extras["path"][0]["name"] == h.names[h.root]


def test_names_come_from_typical_classes_and_a_names_file(tmp_path):
    _, p = grouped_head_net()
    labels = ["ant", "bee", "wasp", "car", "bus", "van"]
    h = induce(p["F"], labels)
    a, b = h.kids(h.root)
    group_a = a if 0 in h.leaves(a) else b
    assert set(h.names[group_a].split(" / ")) == {"ant", "bee", "wasp"}  # three classes: all shown, no "..."
    (tmp_path / "names.txt").write_text(f"# comment\ncar|bus|van\tvehicles\n{h.root}: anything\n")
    h.rename(read_names(tmp_path / "names.txt"))
    assert h.names[h.root] == "anything" and h.names[({a, b} - {group_a}).pop()] == "vehicles"
    with pytest.raises(InputError, match="not a class label"):
        h.rename({"car|plane": "x"})


def test_json_round_trip_and_fingerprint(tmp_path, grouped):
    model, p, _, _ = grouped
    h = induce(p["F"], [f"c{k}" for k in range(6)])
    back = Hierarchy.load(h.save(tmp_path / "t.json"))
    assert np.array_equal(back.children, h.children) and back.names == h.names
    assert back.fingerprint == h.fingerprint
    other = induce(p["F"] * 2)  # another head
    other.save(tmp_path / "other.json")
    with pytest.raises(InputError, match="another head"):
        NBDT(hierarchy=tmp_path / "other.json").explain(model, cam_picture())
    with pytest.raises(InputError, match="not an onnxai NBDT hierarchy"):
        Hierarchy.from_dict({"format": "x"})



def test_damaged_hierarchies_are_refused(grouped):
    _, p, _, _ = grouped
    good = induce(p["F"], [f"c{k}" for k in range(6)]).to_dict()
    assert Hierarchy.from_dict(json.loads(json.dumps(good))).names[:6] == [f"c{k}" for k in range(6)]

    def damaged(change):
        d = json.loads(json.dumps(good))
        change(d)
        return d

    with pytest.raises(InputError, match="damaged NBDT hierarchy .*KeyError"):
        Hierarchy.from_dict(damaged(lambda d: d.pop("nodes")))
    with pytest.raises(InputError, match="damaged NBDT hierarchy"):
        Hierarchy.from_dict(damaged(lambda d: d.update(classes="six")))
    with pytest.raises(InputError, match="damaged NBDT hierarchy"):
        Hierarchy.from_dict(damaged(lambda d: d["nodes"][0].update(children=[0])))
    # a cycle (a node below its own child): walking up from a leaf would never reach the root
    with pytest.raises(InputError, match="do not form a tree"):
        Hierarchy.from_dict(damaged(lambda d: d["nodes"][0].update(children=[0, d["root"]])))
    with pytest.raises(InputError, match="do not form a tree"):  # a class used twice, another never
        Hierarchy.from_dict(damaged(lambda d: d["nodes"][0].update(children=[0, 0])))
    with pytest.raises(InputError, match="do not form a tree"):
        Hierarchy.from_dict(damaged(lambda d: d["labels"].pop()))


# --------------------------------------------------------------------------- inference


@pytest.mark.parametrize("vectors", ["logits", "normalised"])
def test_hard_path_is_the_greedy_descent_computed_by_hand(grouped, vectors):
    model, p, act, _ = grouped
    h = induce(p["F"])
    under = hand_leaves(h.children, 6)
    s = hand_scores(under, p["F"], p["c"], act.mean(axis=(1, 2)), vectors)
    node, path = 10, []
    while node >= 6:
        a, b = (int(v) for v in h.children[node - 6])
        node = a if s[a] >= s[b] else b
        path.append(node)
    e = onnxai.explain(model, cam_picture(), method="nbdt", mode="hard", vectors=vectors)
    assert e.target == node == e.extras["prediction"]
    assert [st["chosen"] for st in e.extras["path"]] == path
    assert all(st["greedy"] == st["chosen"] for st in e.extras["path"])
    assert e.extras["depth"] == len(path)
    assert e.score == pytest.approx(model.scores(model.prepare(cam_picture())[0])[0, node], rel=1e-5)


@pytest.mark.parametrize("vectors", ["logits", "normalised"])
def test_soft_leaf_probabilities_are_path_products_and_sum_to_one(grouped, vectors):
    model, p, act, logits = grouped
    method = NBDT(mode="soft", vectors=vectors)
    tree = method.tree(model)
    f = act.mean(axis=(1, 2))
    d = tree.decide(f)
    assert d.leaf_probs.sum() == pytest.approx(1.0, abs=1e-12)
    under = hand_leaves(tree.h.children, 6)
    s = hand_scores(under, p["F"], p["c"], f, vectors)
    hand = np.ones(6)
    for i, (a, b) in enumerate(tree.h.children):
        pa = 1 / (1 + np.exp(s[int(b)] - s[int(a)]))
        hand[sorted(under[int(a)])] *= pa
        hand[sorted(under[int(b)])] *= 1 - pa
    np.testing.assert_allclose(d.leaf_probs, hand, rtol=1e-6)
    if vectors == "logits":  # a leaf's score is its logit
        np.testing.assert_allclose(d.scores[:6], logits, rtol=1e-5, atol=1e-5)
    e = method.explain(model, cam_picture())
    assert e.target == int(np.argmax(hand)) and e.extras["leaf_probability"] == pytest.approx(hand.max(), rel=1e-6)
    assert np.prod([st["probability"] for st in e.extras["path"]]) == pytest.approx(hand.max(), rel=1e-6)
    for st in e.extras["path"]:  # the two candidates of a decision share its probability
        assert sum(c["probability"] for c in st["candidates"]) == pytest.approx(1.0)


def test_targets_other_than_the_prediction(grouped):
    model, _, _, _ = grouped
    method = NBDT(mode="soft")
    top = method.explain(model, cam_picture(), target="top3")
    assert len(top) == 3 and top[0].target == top[0].extras["prediction"]
    assert [e.extras["leaf_probability"] for e in top] == sorted((e.extras["leaf_probability"] for e in top), reverse=True)
    hard_leaf = NBDT(mode="hard").explain(model, cam_picture()).target
    for other in range(6):  # the path to any class; it leaves the greedy descent exactly when it is not the hard leaf
        e = method.explain(model, cam_picture(), target=other)
        assert e.target == other and e.extras["path"][-1]["chosen"] == other
        assert any(st["greedy"] != st["chosen"] for st in e.extras["path"]) == (other != hard_leaf)


# --------------------------------------------------------------------------- why each decision


def test_each_decision_map_is_the_difference_of_cams(grouped):
    model, p, act, _ = grouped
    e = NBDT(mode="soft").explain(model, cam_picture(), target="top1")
    cams = {k: onnxai.CAM().explain(model, cam_picture(), target=k).raw_map.astype(np.float64) for k in range(6)}
    h = NBDT().tree(model).h
    bottom = 0
    for st, low in zip(e.extras["path"], e.extras["maps"]):
        chosen, other = sorted(h.leaves(st["chosen"])), sorted(h.leaves(st["other"]))
        expected = np.mean([cams[k] for k in chosen], axis=0) - np.mean([cams[k] for k in other], axis=0)
        np.testing.assert_allclose(low, expected, rtol=1e-5, atol=1e-5)
        if len(chosen) == len(other) == 1:  # two classes: CAM(w_left) - CAM(w_right) itself
            bottom += 1
            np.testing.assert_allclose(low, cams[chosen[0]] - cams[other[0]], rtol=1e-5, atol=1e-5)
        # the map's mean plus the bias difference is the decision's margin
        bias = np.mean(p["c"][chosen]) - np.mean(p["c"][other])
        assert float(np.mean(low)) + bias == pytest.approx(st["margin"], rel=1e-5, abs=1e-5)
    np.testing.assert_allclose(e.raw_map, np.sum(e.extras["maps"], axis=0), rtol=1e-5, atol=1e-6)
    assert e.map.shape == (12, 12)
    if bottom == 0:  # make sure the two-class case was checked: explain a class under a two-leaf node
        pair = next(n for n in range(6, 11) if len(h.leaves(n)) == 2)
        leaf = int(h.leaves(pair)[0])
        e2 = NBDT().explain(model, cam_picture(), target=leaf)
        st, low = e2.extras["path"][-1], e2.extras["maps"][-1]
        np.testing.assert_allclose(low, cams[st["chosen"]] - cams[st["other"]], rtol=1e-5, atol=1e-5)


def test_a_model_without_a_linear_head_gets_one_line():
    m, _ = onnx_models.no_pool_net()
    model = onnxai.Model(m, providers="cpu", preprocess={"resize": 4, "crop": 4})
    with pytest.raises(LayerError) as err:
        NBDT().explain(model, cam_picture(4))
    msg = str(err.value)
    assert msg.startswith("NBDT needs a linear classifier on pooled features") and "\n" not in msg
    assert "Relu" in msg  # says what it found instead (a Relu feeds the Gemm through Flatten)


# --------------------------------------------------------------------------- caches and the command line


def test_hierarchy_file_is_written_once_then_read(tmp_path, grouped):
    model, _, _, _ = grouped
    path = tmp_path / "cache" / "tree.json"
    first = NBDT(hierarchy=path).explain(model, cam_picture())
    assert path.exists() and first.extras["hierarchy"].startswith("induced")
    fresh = cam_load(grouped_head_net()[0])  # a new Model: nothing remembered in memory
    second = NBDT(hierarchy=str(path)).explain(fresh, cam_picture())
    assert second.extras["hierarchy"] == str(path) and second.target == first.target


def test_cli_tree_writes_json_picture_report_and_metadata(tmp_path):
    m, _ = grouped_head_net()
    onnx.save(m, tmp_path / "g.onnx")
    (tmp_path / "names.json").write_text(json.dumps({"class 0|class 1|class 2": "group A"}))
    r = CliRunner().invoke(main, ["tree", str(tmp_path / "g.onnx"), "--out", str(tmp_path / "o"), "--report",
                                  "--names", str(tmp_path / "names.json"), "--embed", str(tmp_path / "e.onnx"),
                                  "--resize", "12", "--size", "12"])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "o" / "g_tree.json").read_text())
    assert d["classes"] == 6 and "group A" in [n["name"] for n in d["nodes"]]
    assert Image.open(tmp_path / "o" / "g_tree.png").width > 100
    html = (tmp_path / "o" / "g_tree.html").read_text()
    tree = html.split('<div class="tree">', 1)[1]
    assert tree.count("<details") == 5 and "<script" not in html and "group A" in tree  # one per inner node
    meta = {p.key: p.value for p in onnx.load(tmp_path / "e.onnx").metadata_props}
    assert json.loads(meta[METADATA_KEY])["fingerprint"] == d["fingerprint"]
    e = NBDT().explain(cam_load(onnx.load(tmp_path / "e.onnx")), cam_picture())
    assert e.extras["hierarchy"] == "the model's metadata"
    again = CliRunner().invoke(main, ["tree", str(tmp_path / "g.onnx"), "--out", str(tmp_path / "o")])
    assert again.exit_code == 2 and "exists" in again.output
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "g_tree.json").symlink_to(victim)  # a planted link is refused, even with --force
    planted = CliRunner().invoke(main, ["tree", str(tmp_path / "g.onnx"), "--out", str(tmp_path / "p"), "--force"])
    assert planted.exit_code == 2 and "symbolic link" in planted.output and victim.read_text() == "keep"


def test_cli_explain_nbdt_writes_the_path_picture_json_and_report(tmp_path):
    m, _ = grouped_head_net()
    onnx.save(m, tmp_path / "g.onnx")
    Image.fromarray(cam_picture()).save(tmp_path / "pic.png")
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "g.onnx"), str(tmp_path / "pic.png"), "--method", "nbdt",
                                  "--mode", "hard", "--out", str(out), "--report", "--resize", "12", "--size", "12"])
    assert r.exit_code == 0, r.output
    js = next(out.glob("pic_nbdt_*.json"))
    facts = json.loads(js.read_text())
    assert facts["extras"]["mode"] == "hard" and len(facts["extras"]["path"]) == facts["extras"]["depth"] >= 1
    assert len(facts["extras"]["maps"]) == facts["extras"]["depth"]
    png = Image.open(js.with_suffix(".png"))
    assert png.height > 200 + 100 * facts["extras"]["depth"]  # one row per decision
    html = (out / "report.html").read_text()
    assert "decision tree (NBDT)" in html and "<details open>" in html and "<script" not in html


def test_cli_method_all_skips_nbdt_without_a_linear_head(tmp_path):
    m, _ = onnx_models.no_pool_net(size=8)
    onnx.save(m, tmp_path / "n.onnx")
    Image.fromarray(cam_picture(8)).save(tmp_path / "pic.png")
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "n.onnx"), str(tmp_path / "pic.png"), "--method", "all",
                                  "--samples", "16", "--out", str(tmp_path / "o"), "--no-progress", "--resize", "8",
                                  "--size", "8"])
    assert r.exit_code == 0, r.output
    assert "skipped nbdt: NBDT needs a linear classifier on pooled features" in r.output
