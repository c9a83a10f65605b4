"""num_samples="auto": stop when the map's ranking settles (pictures: halves and quarters) or the standard
errors do (tables, permutation Shapley); same seed, same stop, same bits."""

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import onnxai
from onnxai.cli import main
from onnxai.errors import InputError
from onnxai.methods.base import AUTO_ERROR_FLOOR, AUTO_RANK_TOLERANCE, predicted_agreement, rank_correlation
from onnxai.methods.budget import QUARTER_GROUPS, predicted_disagreement, rank_exponent, split_agreements
from onnxai.tables import Background
from scipy.stats import spearmanr
import onnx_models


def _grid(size=16, cell=4):
    return (np.arange(size)[:, None] // cell * (size // cell) + np.arange(size)[None, :] // cell).astype(np.int32)


def _noise_model(size=16):
    """Two classes whose logits are uniform noise, whatever the input: scores that never settle."""
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Unsqueeze", ["m", "one"], ["m2"]),
             helper.make_node("Concat", ["m2", "m2"], ["mm"], axis=1),
             helper.make_node("RandomUniformLike", ["mm"], ["logits"], low=-3.0, high=3.0)]
    g = helper.make_graph(nodes, "noise", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])],
                          initializer=[onnx.numpy_helper.from_array(np.array([1], np.int64), "one")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    pre = onnxai.Preprocess(resize=None, crop=size, mean=(0.5,) * 3, std=(0.25,) * 3)
    return onnxai.load(m, preprocess=pre, providers="cpu")


@pytest.mark.parametrize("method", [
    lambda: onnxai.LIME(num_samples="auto", surrogate="ridge", segmentation=_grid(), fill="black", seed=3, score="probabilities"),
    lambda: onnxai.KernelSHAP(num_samples="auto", segmentation=_grid(), fill="black", seed=3, score="probabilities"),
    lambda: onnxai.PermutationSHAP(num_samples="auto", segmentation=_grid(), fill="black", seed=3, score="probabilities"),
    lambda: onnxai.RISE(num_samples="auto", cells=4, seed=3, score="logits", tolerance=0.2),
])
def test_auto_stops_converged_and_is_reproducible(region_model, method):
    model, _ = region_model
    pic = onnx_models.region_picture(region=(4, 12, 4, 12))
    m = method()
    a = m.explain(model, pic, target="top2")
    b = method().explain(model, pic, target="top2")
    for ea, eb in zip(a, b):
        assert ea.extras["stopped"] == "converged"
        assert ea.extras["num_samples"] < ea.extras["max_samples"]
        assert ea.extras["num_samples"] == eb.extras["num_samples"]
        np.testing.assert_array_equal(ea.map, eb.map)
        np.testing.assert_array_equal(ea.stderr, eb.stderr)
        if m.rank_rule:  # pictures, rank rule: every target's predicted agreement reached 1 - tolerance,
            # or (features without effect: the 12 cells outside the region tie at 0) the error floor
            assert ea.extras["tolerance"] == (0.2 if isinstance(m, onnxai.RISE) else AUTO_RANK_TOLERANCE)
            assert 0.5 <= ea.extras["rank_exponent"] <= 1.0
            if ea.extras["stop_rule"] == "ranks":
                assert ea.extras["rank_disagreement"] <= ea.extras["tolerance"]
            else:
                assert ea.extras["stop_rule"] == "ranks (error floor)"
                values = ea.importance if ea.importance is not None else ea.map - ea.map.mean()
                w = (None if ea.segments is None
                     else np.bincount(ea.segments.ravel(), minlength=values.size)[:values.size].astype(float))
                w = np.ones(values.size) if w is None else w / w.sum() * values.size
                spread = np.sqrt(np.average((values.ravel() - np.average(values.ravel(), weights=w)) ** 2, weights=w))
                assert np.max(ea.stderr) <= AUTO_ERROR_FLOOR * spread * 1.0001
        else:  # error rule: every target's standard errors below tolerance x its largest |value|
            assert ea.extras["stop_rule"] == "error" and ea.extras["error_ratio"] <= ea.extras["tolerance"]
            values = ea.importance if ea.importance is not None else ea.map - ea.map.mean()
            assert np.max(ea.stderr) <= ea.extras["tolerance"] * np.max(np.abs(values)) * 1.0001


def test_rank_correlation_is_spearman_of_the_painted_pixels():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(12), rng.standard_normal(12)
    area = rng.integers(1, 40, 12)
    pixels = lambda v: np.repeat(v, area)
    assert rank_correlation(a, b, area) == pytest.approx(spearmanr(pixels(a), pixels(b))[0], abs=1e-12)
    assert rank_correlation(a, b) == pytest.approx(spearmanr(a, b)[0], abs=1e-12)
    assert rank_correlation(a, a, area) == pytest.approx(1.0) and rank_correlation(a, np.zeros(12)) == 0.0
    assert rank_correlation(np.zeros(12), np.full(12, 2.0)) == 1.0  # a target the picture does not move


def test_split_half_prediction_tracks_the_real_agreement():
    """Spearman-Brown on two halves predicts the full estimate's correlation with the truth: simulated
    maps truth + noise / sqrt(n), 400 trials; a wrong formula (the half correlation itself, or no
    square root) misses by more than the tolerance asserted."""
    rng = np.random.default_rng(1)
    truth = rng.standard_normal(40)
    pred, real, raw = [], [], []
    for _ in range(400):
        ha, hb = truth + rng.standard_normal(40) * 0.5, truth + rng.standard_normal(40) * 0.5
        full = (ha + hb) / 2
        r = rank_correlation(ha, hb)
        pred.append(predicted_agreement(r))
        raw.append(r)
        real.append(rank_correlation(full, truth))
    assert abs(np.mean(pred) - np.mean(real)) < 0.01
    assert abs(np.mean(raw) - np.mean(real)) > 0.03


def test_split_half_prediction_for_more_samples_than_the_halves_hold():
    """parts=k predicts the agreement of a map made of k halves' worth of samples (the benchmark's
    RISE reference, whose halves are power-of-two blocks): simulated as above with 4 halves' noise
    averaged; parts=2 (what the halves alone say) is measurably pessimistic for it."""
    rng = np.random.default_rng(2)
    truth = rng.standard_normal(40)
    pred4, pred2, real = [], [], []
    for _ in range(400):
        h = truth + rng.standard_normal((4, 40)) * 0.7
        r = rank_correlation(h[0], h[1])
        pred4.append(predicted_agreement(r, parts=4))
        pred2.append(predicted_agreement(r))
        real.append(rank_correlation(h.mean(0), truth))
    assert abs(np.mean(pred4) - np.mean(real)) < 0.01
    assert np.mean(real) - np.mean(pred2) > 0.02
    assert predicted_agreement(0.8, parts=2) == predicted_agreement(0.8)


def test_halves_are_disjoint_designs_of_their_own(region_model):
    """LIME's halves are the surrogate fitted on the even and odd pairs; Kernel SHAP's each solve an
    efficient design (sum of phi = f(x) - f(baseline)) from disjoint rows."""
    model, _ = region_model
    pic = onnx_models.region_picture(region=(4, 12, 4, 12))
    lime = onnxai.LIME(num_samples="auto", surrogate="ridge", segmentation=_grid(), fill="black", seed=3,
                       sampling="paired", score="probabilities")
    x, crop = model.prepare(pic)
    probs = model.scores(x)[0]
    setup = lime.setup(model, x, crop, probs)
    run = lime._run(model, x, setup.baseline, setup.source, ends=lime.end_points)
    (a, b), = lime.halves(run, setup, [1])
    m, w = setup.state["masks"], lime.sample_weights(setup.state["masks"])
    even = (np.arange(m.shape[0]) // 2) % 2 == 0
    np.testing.assert_allclose(a, lime.fit(m[even], run.scores[even, 1], w[even])[0])
    np.testing.assert_allclose(b, lime.fit(m[~even], run.scores[~even, 1], w[~even])[0])
    ks = onnxai.KernelSHAP(num_samples="auto", max_samples=300, segmentation=_grid(), fill="black", seed=3,
                           score="probabilities")
    setup = ks.setup(model, x, crop, probs)
    run = ks._run(model, x, setup.baseline, setup.source, ends=ks.end_points)
    (a, b), = ks.halves(run, setup, [1])
    gap = run.input_scores[1] - run.baseline_scores[1]
    assert a.sum() == pytest.approx(gap, abs=1e-6) and b.sum() == pytest.approx(gap, abs=1e-6)
    assert not np.allclose(a, b)


def test_auto_lime_equals_a_fixed_budget_of_the_samples_it_used(conv_model):
    """On a model where every cell matters (no ties), the rank rule decides, and a tighter tolerance
    needs more samples; the map equals a fixed-budget run of the samples auto used."""
    pic = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    make = lambda tol, n="auto": onnxai.LIME(num_samples=n, surrogate="ridge", segmentation=_grid(), fill="black", seed=1,
                                             score="probabilities", tolerance=tol, sampling="paired")
    auto = make(0.05).explain(conv_model, pic, target=1)
    assert auto.extras["stop_rule"] == "ranks" and auto.extras["stopped"] == "converged"
    n = auto.extras["num_samples"]
    fixed = make(None, n).explain(conv_model, pic, target=1)
    np.testing.assert_allclose(auto.importance, fixed.importance, atol=1e-6)
    tighter = make(0.02).explain(conv_model, pic, target=1)
    assert tighter.extras["num_samples"] > n and tighter.extras["stopped"] == "converged"


def test_noise_never_settles_and_stops_at_max_samples():
    model = _noise_model()
    pic = onnx_models.region_picture()
    e = onnxai.LIME(num_samples="auto", surrogate="ridge", segmentation=_grid(), max_samples=300,
                    tolerance=0.05).explain(model, pic, target=1)
    assert e.extras["stopped"] == "max_samples" and e.extras["num_samples"] == 300
    assert e.extras["rank_disagreement"] > 0.05


def test_auto_table_rows_each_stop_on_their_own(table_model):
    rng = np.random.default_rng(0)
    bg = Background(rng.standard_normal((5, 4)), np.ones(5))
    X = rng.standard_normal((3, 4))
    e = onnxai.KernelSHAP(num_samples="auto", background=bg, tolerance=0.05, seed=0).explain(table_model, X)
    assert len(e.extras["num_samples"]) == 3 and set(e.extras["stopped"]) <= {"converged", "max_samples"}
    assert e.stderr.shape == e.values.shape
    lt = onnxai.LimeTabular(background=rng.standard_normal((50, 4)), num_samples="auto", tolerance=0.1).explain(
        table_model, X)
    assert len(lt.extras["num_samples"]) == 3 and all(s == "converged" for s in lt.extras["stopped"])
    assert max(lt.extras["num_samples"]) < lt.extras["max_samples"]


@pytest.mark.parametrize("kw, message", [
    (dict(tolerance=0), "tolerance must be a number > 0"),
    (dict(tolerance="x"), "tolerance must be a number > 0"),
    (dict(tolerance=float("nan")), "tolerance must be a number > 0"),
    (dict(max_samples=50), "max_samples must be an integer >= 100"),
    (dict(surrogate="tree"), "needs standard errors"),
])
def test_bad_budgets_say_what_to_do(kw, message):
    with pytest.raises(InputError, match=message):
        onnxai.LIME(num_samples="auto", **kw)
    with pytest.raises(InputError, match="whole number or 'auto'"):
        onnxai.LIME(num_samples="many")


def test_cli_samples_auto(tmp_path):
    path, pic = onnx_models.region_files(tmp_path)
    r = CliRunner().invoke(main, ["explain", str(path), str(pic), "--method", "lime", "--surrogate", "ridge",
                                  "--samples", "auto", "--tolerance", "0.1", "--max-samples", "2000",
                                  "--features", "16", "--segmentation", "grid", "--resize", "16", "--size", "16",
                                  "--out", str(tmp_path / "out"), "--no-progress", "--mark-unsettled"])
    assert r.exit_code == 0, r.output
    assert "samples (converged" in r.output
    r = CliRunner().invoke(main, ["explain", str(path), str(pic), "--method", "occlusion", "--samples", "auto",
                                  "--resize", "16", "--size", "16", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "deterministic" in r.output
    r = CliRunner().invoke(main, ["explain", str(path), str(pic), "--method", "lime", "--samples", "auto",
                                  "--surrogate", "ridge", "--tolerance", "-1", "--resize", "16", "--size", "16",
                                  "--out", str(tmp_path / "t")])
    assert r.exit_code != 0 and "tolerance must be a number > 0" in r.output


def _group_maps(quarters):
    """The maps of QUARTER_GROUPS from four quarter maps, a group's map the mean of its quarters."""
    return [np.mean([quarters[q] for q in g], axis=0) for g in QUARTER_GROUPS]


def test_rank_rule_counts_the_samples_the_halves_leave_out():
    """RISE's halves are two power-of-two blocks: at 600 masks, two blocks of 256, so the prediction is
    for 600 / 256 blocks' worth; LIME's halves hold every sample (2). Without the factor RISE's rule
    would read the same figure as LIME's."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal(30)
    maps = _group_maps(a + 0.7 * rng.standard_normal((4, 30)))
    ratios = {}
    for name, m, parts in (("rise", onnxai.RISE(num_samples="auto", sampling="independent"), 600 / 256),
                           ("lime", onnxai.LIME(num_samples="auto", surrogate="ridge"), 2.0),
                           ("rise sobol", onnxai.RISE(num_samples="auto"), 600 / 256)):
        r2, r4 = split_agreements(maps, None, m.halves_pairings)
        check = m.auto_check(lambda run: ([a], [np.ones(30)]), quarters=lambda run: [maps])
        check(600, np.zeros((600, 2)), None, None)
        ratios[name] = check.state["ratio"]
        if not m.quarters_scale:  # RISE: Spearman-Brown on the halves alone
            r4 = None
        assert ratios[name] == pytest.approx(predicted_disagreement(r2, r4, parts))
        assert check.state["exponent"] == pytest.approx(1.0 if r4 is None else rank_exponent(r2, r4))
    assert ratios["rise"] < ratios["lime"] - 0.01
    from onnxai.methods.rise import _block, _next_snapshot
    assert [_block(n) for n in (1, 2, 3, 4, 600, 1023, 1024)] == [1, 1, 1, 2, 256, 256, 512]
    assert [_next_snapshot(n) for n in (0, 1, 2, 3, 4, 5, 6, 7, 8, 100, 127, 128, 191, 192)] == \
        [1, 2, 3, 4, 6, 6, 8, 8, 12, 128, 128, 192, 192, 256]


def test_split_agreements_read_the_quarter_groups_in_order():
    rng = np.random.default_rng(4)
    q = rng.standard_normal((4, 25))
    maps = _group_maps(q)
    r2, r4 = split_agreements(maps)
    assert r4 == pytest.approx(np.mean([rank_correlation(q[i], q[j]) for i in range(4) for j in range(i + 1, 4)]))
    assert r2 == pytest.approx(np.mean([rank_correlation(maps[4], maps[5]), rank_correlation(maps[6], maps[7]),
                                        rank_correlation(maps[8], maps[9])]))
    assert split_agreements(maps, None, (0,))[0] == pytest.approx(rank_correlation(maps[4], maps[5]))
    assert split_agreements(maps, None, (2,))[0] == pytest.approx(rank_correlation(maps[8], maps[9]))
    r2_alone, none = split_agreements(maps, None, (0,), quarters=False)  # Spearman-Brown alone: no r4
    assert none is None and r2_alone == pytest.approx(rank_correlation(maps[4], maps[5]))
    from onnxai.methods.budget import quarter_of
    assert list(quarter_of(np.arange(8))) == [0, 2, 1, 3, 0, 2, 1, 3]  # quarters (0, 1): the even units
    assert not onnxai.RISE().quarters_scale and onnxai.LIME().quarters_scale and onnxai.KernelSHAP().quarters_scale
    assert predicted_disagreement(0.9, None, 3.0) == pytest.approx(1 - predicted_agreement(0.9, 3.0))
    assert onnxai.RISE().halves_pairings == (0,) and onnxai.RISE(sampling="independent").halves_pairings == (0, 1, 2)
    with pytest.raises(ValueError, match="needs 10 maps"):
        split_agreements(maps[:2])


def test_rank_exponent_between_its_bounds():
    assert rank_exponent(0.9, 0.8) == pytest.approx(1.0)  # disagreement doubles with the variance
    assert rank_exponent(0.9, 0.9 - 0.1 * (np.sqrt(2) - 1)) == pytest.approx(0.5)  # grows by sqrt(2)
    assert rank_exponent(0.9, 0.85) == pytest.approx(np.log2(1.5))
    assert rank_exponent(0.9, 0.5) == 1.0 and rank_exponent(0.9, 0.899) == 0.5  # clipped
    assert rank_exponent(1.0, 0.97) == 1.0  # the halves agree exactly
    assert rank_exponent(0.95, 0.96) == 0.5  # quarters agree better than halves: the cautious end
    assert predicted_disagreement(0.9, 0.8) == pytest.approx(1 - predicted_agreement(0.9))  # g = 1: Spearman-Brown
    assert predicted_disagreement(0.9, 0.9 - 0.1 * (np.sqrt(2) - 1)) == pytest.approx(2 * (1 - predicted_agreement(0.9)))
    assert predicted_disagreement(-0.2, -0.3) == 1.0


@pytest.mark.parametrize("spread, noise", [("normal", 0.3), ("heavy-tailed", 0.3), ("bunched", 0.15)])
def test_quarters_correct_spearman_brown_where_the_ranks_move_in_steps(spread, noise):
    """Maps truth + noise made of four quarters, 300 trials, near the rule's 0.95. With normal values
    Spearman-Brown is right and so is predicted_disagreement (exponent near 1). With heavy-tailed
    (cubed normal) values nearby features trade places: Spearman-Brown is optimistic by 0.03,
    predicted_disagreement within 0.01. With bunched values (8 levels of 5 features) Spearman-Brown is
    optimistic by 0.014 and predicted_disagreement errs the other way, cautious by 0.02 at most."""
    rng = np.random.default_rng(5)
    truth = {"normal": rng.standard_normal(40), "heavy-tailed": rng.standard_normal(40) ** 3,
             "bunched": np.repeat(rng.standard_normal(8), 5) + 0.02 * rng.standard_normal(40)}[spread]
    real, sb, new = [], [], []
    for _ in range(300):
        q = truth + noise * rng.standard_normal((4, 40))
        r2, r4 = split_agreements(_group_maps(q))
        real.append(rank_correlation(q.mean(0), truth))
        sb.append(predicted_agreement(r2))
        new.append(1 - predicted_disagreement(r2, r4))
    real, sb, new = np.mean(real), np.mean(sb), np.mean(new)
    if spread == "normal":
        assert abs(new - real) < 0.005 and abs(sb - real) < 0.005
    elif spread == "heavy-tailed":
        assert abs(new - real) < 0.01 and sb - real > 0.02
    else:
        assert sb - real > 0.01 and -0.025 < new - real <= 0


def test_rise_quarters_are_the_mask_blocks(region_model):
    """RISE's quarter 0 at 600 masks is the map of its first 128 masks, and quarters (0, 1) the first
    256: what runs of 128 and 256 masks of the same seed give (the masks are a prefix-consistent draw)."""
    model, _ = region_model
    pic = onnx_models.region_picture(region=(4, 12, 4, 12))
    x, crop = model.prepare(pic)
    probs = model.scores(x)[0]
    maps = {}
    for n in (600, 128, 256):
        m = onnxai.RISE(num_samples=n, cells=4, seed=2, sampling="sobol", score="logits")
        setup = m.setup(model, x, crop, probs)
        run = m._run(model, x, setup.baseline, setup.source, ends=m.end_points)
        if n == 600:
            parts = m.part_maps(run, setup, [1], ((0,), (0, 1), (2, 3)))[0]
            with pytest.raises(ValueError, match="at least 4 masks"):
                m.part_maps(engine_run(run, 3), setup, [1], ((0,),))
        else:
            maps[n] = m.aggregate(run, setup, [1])[0]["map"] * m.keep_probability
    np.testing.assert_allclose(parts[0], maps[128], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts[1], maps[256], rtol=1e-5, atol=1e-6)
    assert not np.allclose(parts[1], parts[2])


def engine_run(run, n):
    from onnxai.engine import RunResult
    return RunResult(scores=run.scores[:n], forward_s=0.0, composite_wait_s=0.0, total_s=0.0, chunk=0,
                     input_scores=run.input_scores, baseline_scores=run.baseline_scores)


def test_error_floor_reads_the_spread_not_the_largest_value():
    """One dominant feature (a heavy-tailed map) makes 0.05 x the largest |value| loose: the floor of the
    rank rule reads the standard deviation, features counted by their pixels."""
    from onnxai.methods.budget import below_floor
    v = np.r_[10.0, np.linspace(-0.5, 0.5, 20)]
    se = np.full(21, 0.1)  # 1% of the largest |value|, 4.6% of the spread of these 21 values
    assert np.max(se) < 0.05 * np.max(np.abs(v))
    assert below_floor([v], [se], 0.05) and not below_floor([v], [se], 0.04)
    area = np.r_[1, np.full(20, 50)]  # the dominant feature is one pixel: the spread shrinks to 0.44
    assert not below_floor([v], [se], 0.05, area)
    assert below_floor([v], [se / 10], 0.05, area)
    assert not below_floor([v], [np.r_[np.nan, se[1:]]], 0.05)  # an unknown error never settles


def test_lime_ridge_groups_from_quarter_sums_equal_the_fits():
    """LIME's rank rule sums the quarters' normal equations instead of refitting each group: the same
    coefficients as weighted_ridge on the group's rows, for every target, with and without a ridge."""
    from onnxai import kernels
    from onnxai.methods.lime import _ridge_groups
    rng = np.random.default_rng(0)
    X = (rng.random((803, 41)) < 0.5).astype(float)
    Y, w, quarter = rng.random((803, 3)), rng.random(803), rng.integers(0, 4, 803)
    for alpha in (1.0, 0.0):
        got = _ridge_groups(X, Y, w, quarter, QUARTER_GROUPS, alpha)
        for t in range(3):
            for j, g in enumerate(QUARTER_GROUPS):
                r = np.isin(quarter, g)
                np.testing.assert_allclose(got[t][j], kernels.weighted_ridge(X[r], Y[r, t], w[r], alpha=alpha)[0],
                                           rtol=1e-9, atol=1e-12)
