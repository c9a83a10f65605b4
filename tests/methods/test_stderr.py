"""Standard errors of the sampled methods: calibration against exact values over many seeds.

Each hand-built model's game (the score of every coalition of features) is scored once by brute
force through the engine; each seed then draws the method's own design, reads the scores of its rows
from that table (the same numbers the engine would return) and runs the method's own aggregation, so
150 seeds cost milliseconds. The 95% intervals must cover the exact values for 90-98% of the
features, and a wrong variance formula (units that ignore the pairing) must leave that band.
"""

import itertools
import json
import math

import numpy as np
import pytest

import onnxai
from onnxai import engine
from onnxai.kernels.variance import bootstrap_stderr, design_variance, shapley_stderr
from onnxai.methods.fills import make_fill
from onnxai.tables import Background
import onnx_models

SEEDS = range(150)
BAND = (0.90, 0.98)


def _all_masks(k):
    return np.array(list(itertools.product([0, 1], repeat=k)), np.uint8)


def _index(masks):
    return masks.astype(np.int64) @ (1 << np.arange(masks.shape[1] - 1, -1, -1))


def _shapley(v, k):
    """Exact Shapley values from v (2^k, C) indexed by _index."""
    phi = np.zeros((k, v.shape[1]))
    masks = _all_masks(k)
    idx = _index(masks)
    for j in range(k):
        without = masks[masks[:, j] == 0]
        with_j = without.copy()
        with_j[:, j] = 1
        s = without.sum(axis=1)
        w = np.array([math.factorial(a) * math.factorial(k - a - 1) / math.factorial(k) for a in s])
        phi[j] = (w[:, None] * (v[idx[_index(with_j)]] - v[idx[_index(without)]])).sum(axis=0)
    return phi


def _picture_game(model, pic, segments, fill="mean"):
    """Scores (2^k, classes) of every on/off pattern of the k segments, row i = pattern with index i."""
    x, crop = model.prepare(pic)
    k = int(segments.max()) + 1
    masks = _all_masks(k)
    baseline = make_fill(model, crop, x, fill, segments=segments)
    res = engine.run(model, x, baseline, engine.FeatureMasks(masks, segments))
    out = np.empty_like(res.scores, dtype=np.float64)
    out[_index(masks)] = res.scores
    return out


def _blocks(size=16, rows=2, cols=4):
    r = np.arange(size)[:, None] * rows // size
    c = np.arange(size)[None, :] * cols // size
    return (r * cols + c).astype(np.int32)


@pytest.fixture(scope="module")
def picture_case():
    model = onnx_models.conv_model(classes=3, seed=3)
    pic = np.random.default_rng(5).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    segments = _blocks()
    return model, pic, segments, _picture_game(model, pic, segments)


class _Run:
    def __init__(self, scores, fx=None, fnull=None):
        self.scores, self.input_scores, self.baseline_scores = scores, fx, fnull


def _coverage(estimates, errors, exact):
    est, se = np.asarray(estimates), np.asarray(errors)
    return float(np.mean(np.abs(est - exact[None]) <= 1.96 * se))


def _kernel_shap_draws(game, k, num_samples, classes, units_of=None, sampling="stratified", leverage=True):
    """(estimates, stderrs) over SEEDS of Kernel SHAP with the game's scores looked up."""
    ests, ses = [], []
    for seed in SEEDS:
        ks = onnxai.KernelSHAP(num_samples=num_samples, seed=seed, sampling=sampling)
        masks, weights = ks.coalitions(k)
        scores = game[_index(masks)]
        fnull, fx = game[0], game[-1]
        phi = ks.solve(masks, weights, scores, fnull, fx, classes)
        if units_of is None:
            se = ks.stderr(masks, weights, scores, fnull, fx, phi, classes, leverage=leverage)
        else:  # a wrong formula: the same estimator with other units
            _, strata, fraction = ks.design(masks)
            y = scores[:, classes] - fnull[classes]
            se = shapley_stderr(masks, weights, y, phi, units_of(masks), strata, fraction)
        ests.append(phi)
        ses.append(se)
    return ests, ses


@pytest.mark.parametrize("sampling", ["stratified", "leverage"])
def test_kernel_shap_picture_intervals_cover_the_exact_shapley_values(picture_case, sampling):
    model, pic, segments, game = picture_case
    k = 8
    exact = _shapley(game, k)
    ests, ses = _kernel_shap_draws(game, k, 100, [0, 1, 2], sampling=sampling)
    cov = _coverage(ests, ses, exact)
    assert BAND[0] <= cov <= BAND[1], cov
    # ignoring the pairing (each row its own unit) gives intervals that are far too wide
    ests, ses = _kernel_shap_draws(game, k, 100, [0, 1, 2], units_of=lambda m: np.arange(m.shape[0]),
                                   sampling=sampling)
    assert _coverage(ests, ses, exact) > BAND[1]


@pytest.mark.parametrize("sampling", ["stratified", "leverage"])
def test_kernel_shap_picture_stderr_from_explain_matches_the_lookup(picture_case, sampling):
    model, pic, segments, game = picture_case
    e = onnxai.KernelSHAP(num_samples=100, segmentation=segments, seed=4, sampling=sampling).explain(model, pic, target=1)
    ks = onnxai.KernelSHAP(num_samples=100, seed=4, sampling=sampling)
    masks, weights = ks.coalitions(8)
    phi = ks.solve(masks, weights, game[_index(masks)], game[0], game[-1], [1])
    se = ks.stderr(masks, weights, game[_index(masks)], game[0], game[-1], phi, [1])
    np.testing.assert_allclose(e.importance, phi[:, 0], atol=2e-5)
    np.testing.assert_allclose(e.stderr, se[:, 0], rtol=1e-3, atol=1e-6)
    assert e.stderr.shape == e.importance.shape and (e.stderr > 0).all()


def _table_game(M):
    """(model, background, row, scores of every coalition) of a small tabular MLP."""
    model = onnx_models.mlp_model(M, C=3, seed=1)
    rng = np.random.default_rng(0)
    bg = Background(rng.standard_normal((4, M)), np.ones(4))
    row = rng.standard_normal(M)
    masks = _all_masks(M)
    res = engine.run(model, row[None].astype(np.float32), None,
                     engine.TableCoalitions(masks, bg.data.astype(np.float32), bg.weights))
    game = np.empty_like(res.scores, dtype=np.float64)
    game[_index(masks)] = res.scores
    return model, bg, row, game


@pytest.mark.parametrize("sampling", ["stratified", "leverage"])
def test_kernel_shap_table_intervals_cover_brute_force_shapley_values(sampling):
    M = 8
    model, bg, row, game = _table_game(M)
    exact = _shapley(game, M)
    ests, ses = _kernel_shap_draws(game, M, 100, [0, 1, 2], sampling=sampling)
    cov = _coverage(ests, ses, exact)
    assert BAND[0] <= cov <= BAND[1], cov
    if sampling != "stratified":
        return
    # and end to end through explain_table: the same numbers, stderr in the result and its JSON
    e = onnxai.KernelSHAP(num_samples=100, background=bg, seed=7).explain(model, row[None])
    ks = onnxai.KernelSHAP(num_samples=100, seed=7)
    mk, wk = ks.coalitions(M)
    phi = ks.solve(mk, wk, game[_index(mk)], game[0], game[-1], [0, 1, 2])
    np.testing.assert_allclose(e.values[0], phi, atol=1e-5)
    np.testing.assert_allclose(e.stderr[0], ks.stderr(mk, wk, game[_index(mk)], game[0], game[-1], phi, [0, 1, 2]),
                               rtol=1e-3, atol=1e-6)
    assert "stderr" in e.to_json() and "stderr" in e.records()[0]


@pytest.mark.parametrize("case, k, n", [("table", 6, 30), ("table", 8, 40), ("picture", 8, 40)])
def test_kernel_shap_few_coalitions_need_the_leverage_correction(picture_case, case, k, n):
    # a few dozen coalitions for 6-8 features: the fit leans on each pair, whose residual then understates
    # its error. Measured: plain sandwich 0.79 / 0.76 / 0.76, corrected 0.91 / 0.91 / 0.92
    game = _table_game(k)[3] if case == "table" else picture_case[3]
    exact = _shapley(game, k)
    assert BAND[0] <= _coverage(*_kernel_shap_draws(game, k, n, [0, 1, 2]), exact) <= BAND[1]
    assert _coverage(*_kernel_shap_draws(game, k, n, [0, 1, 2], leverage=False), exact) < BAND[0]


def test_kernel_shap_stderr_is_the_delete_one_pair_jackknife():
    # the leverage-corrected sandwich equals the exact delete-one-pair jackknife (refits without each pair)
    # times U / (U - 1), for complementary pairs of equal weight; the plain sandwich does not
    from onnxai.kernels.shapley import shapley_solve
    rng = np.random.default_rng(0)
    M, U = 10, 60
    rows = []
    for s in rng.integers(1, M, U):
        z = np.zeros(M, np.uint8)
        z[rng.choice(M, s, replace=False)] = 1
        rows += [z, 1 - z]
    Z = np.array(rows)
    size = Z.sum(axis=1)
    w = (M - 1) / (np.array([math.comb(M, int(s)) for s in size]) * size * (M - size))
    y = rng.standard_normal((2 * U, 2)) + Z @ rng.standard_normal((M, 2)) + 0.5 * Z[:, :1] * Z[:, 1:2]
    delta = np.array([1.0, -0.5])
    phi = shapley_solve(Z, w, y, delta)
    units = np.arange(2 * U) // 2
    d = np.array([shapley_solve(Z[units != u], w[units != u], y[units != u], delta) - phi for u in range(U)])
    jackknife = np.sqrt((U - 1) / U * ((d - d.mean(axis=0)) ** 2).sum(axis=0)) * U / (U - 1)
    np.testing.assert_allclose(shapley_stderr(Z, w, y, phi, units), jackknife, rtol=1e-9)
    assert np.abs(shapley_stderr(Z, w, y, phi, units, leverage=False) / jackknife - 1).max() > 0.2


def test_kernel_shap_too_few_coalitions_give_nan_errors_and_say_so(picture_case, monkeypatch, capfd):
    # 6 coalitions cannot determine 8 values: the solve's minimum-norm choice is not an estimate, and the
    # sandwich of a singular fit used to print numbers (1e45 on the report's 36-feature run at 32 samples)
    from onnxai import _log
    from onnxai.kernels.shapley import determines
    monkeypatch.setattr(_log, "_said", set())
    model, pic, segments, game = picture_case
    e = onnxai.KernelSHAP(num_samples=6, segmentation=segments, seed=0).explain(model, pic, target=0)
    assert np.isnan(e.stderr).all() and np.isfinite(e.importance).all()
    assert "6 coalitions do not determine the values of 8 features" in capfd.readouterr().err
    e = onnxai.KernelSHAP(num_samples=40, segmentation=segments, seed=0).explain(model, pic, target=0)
    assert np.isfinite(e.stderr).all() and "do not determine" not in capfd.readouterr().err
    model, bg, row, game = _table_game(8)  # tables too; their JSON writes the missing errors as null
    t = onnxai.KernelSHAP(num_samples=5, background=bg, seed=0).explain(model, row[None])
    assert np.isnan(t.stderr).all() and "5 coalitions do not determine" in capfd.readouterr().err
    assert json.loads(json.dumps(t.to_json(), allow_nan=False))["stderr"][0][0] == [None] * 3
    masks = _all_masks(3)[1:-1]
    assert determines(masks, np.ones(6)) and not determines(masks[:1], np.ones(1))
    assert not determines(np.r_[masks[:1], masks[:1]], np.ones(2))  # repeated rows add no rank


def _lime_target(game, k, n, t, alpha=1.0, width=0.25):
    """What LIME's ridge on n samples estimates: the population weighted least squares over every
    on/off pattern (each of probability 2^-k), with the penalty alpha / n of n samples."""
    Z = _all_masks(k).astype(np.float64)
    w = onnxai.kernels.lime_kernel_weights(Z.astype(np.uint8), width)
    y = game[_index(Z.astype(np.uint8)), t]
    mu = (w @ Z) / w.sum()
    Zc = Z - mu
    G = (Zc * w[:, None]).T @ Zc / Z.shape[0]
    r = (Zc * w[:, None]).T @ (y - (w @ y) / w.sum()) / Z.shape[0]
    return np.linalg.solve(G + alpha / n * np.eye(k), r)


def _lime_draws(segments, game, n, surrogate):
    """Per seed of SEEDS: (the LIME, its masks, its part for class 1) with the game's scores looked up."""
    for seed in SEEDS:
        lime = onnxai.LIME(num_samples=n, surrogate=surrogate, seed=seed)
        masks, state = lime.sample_masks(8)
        state.update(masks=masks, segments=segments, k=8)
        setup = onnxai.methods.base.Setup(None, None, state)
        yield lime, masks, lime.aggregate(_Run(game[_index(masks)]), setup, [1])[0]


@pytest.mark.parametrize("n", [400])
def test_lime_ridge_intervals_cover_the_population_surrogate(picture_case, n):
    model, pic, segments, game = picture_case
    exact = _lime_target(game, 8, n, 1)
    parts = [part for _, _, part in _lime_draws(segments, game, n, "ridge")]
    cov = _coverage([p["importance"] for p in parts], [p["stderr"] for p in parts], exact)
    assert BAND[0] <= cov <= BAND[1], cov


def test_lime_lasso_bootstrap_resamples_pairs_and_covers_the_population_lasso(picture_case):
    # the bootstrap resampled single rows of the paired design: 87% on this game (94% with pairs); on the
    # shipped model's pictures (400 / 1000 samples) rows gave 0.95-0.99, pairs 0.91-0.96
    model, pic, segments, game = picture_case
    Z = _all_masks(8)
    n = 400
    exact = onnxai.kernels.weighted_lasso(Z.astype(np.float64), game[_index(Z), 1],
                                          onnxai.kernels.lime_kernel_weights(Z, 0.25), alpha=1.0 / n,
                                          max_iter=5000, tol=1e-10)[0]
    ests, ses, rows = [], [], []
    for lime, masks, part in _lime_draws(segments, game, n, "linear"):
        ests.append(part["importance"])
        ses.append(part["stderr"])
        X, y, w = masks.astype(np.float64), game[_index(masks), 1], lime.sample_weights(masks)
        rows.append(bootstrap_stderr(lambda r: onnxai.kernels.weighted_lasso(
            X[r], y[r], w[r], alpha=1.0 / n, max_iter=5000, tol=1e-6)[0], n, seed=lime.seed))
    assert BAND[0] <= _coverage(ests, ses, exact) <= BAND[1]
    assert _coverage(ests, rows, exact) < BAND[0]  # rows as units: a wrong formula leaves the band


def test_permutation_shap_intervals_cover_and_pairs_are_the_unit(picture_case):
    model, pic, segments, game = picture_case
    exact = _shapley(game, 8)[:, 1]
    ests, ses, wrong = [], [], []
    for seed in SEEDS:
        ps = onnxai.PermutationSHAP(num_samples=40, seed=seed)
        masks, state = ps.sample_masks(8)
        state.update(masks=masks, segments=segments, k=8)
        run = _Run(game[_index(masks)], game[-1], game[0])
        part = ps.aggregate(run, onnxai.methods.base.Setup(None, None, state), [1])[0]
        ests.append(part["importance"])
        ses.append(part["stderr"])
        # each permutation its own unit, ignoring that pi and its reverse were drawn together
        perms, where = state["perms"], state["where"]
        table = np.concatenate([game[:1, 1], run.scores[:, 1], game[-1:, 1]])
        walk = np.concatenate([np.zeros((40, 1), np.int64), where + 1, np.full((40, 1), table.size - 1)], axis=1)
        per = np.zeros((40, 8))
        np.put_along_axis(per, perms, np.diff(table[walk], axis=1) / 40, axis=1)
        wrong.append(np.sqrt(np.diag(design_variance(per, np.arange(40)))))
    cov = _coverage(ests, ses, exact)
    assert BAND[0] <= cov <= BAND[1], cov
    assert not BAND[0] <= _coverage(ests, wrong, exact) <= BAND[1]


def test_rise_intervals_cover_a_long_run(region_model):
    model, _ = region_model
    pic = onnx_models.region_picture()
    ref = onnxai.RISE(num_samples=40000, cells=4, seed=10_000, score="logits", sampling="independent").explain(model, pic, target=1)
    covs = []
    for seed in range(100):
        e = onnxai.RISE(num_samples=200, cells=4, seed=seed, score="logits", sampling="independent").explain(model, pic, target=1)
        assert e.stderr.shape == e.map.shape
        covs.append(np.mean(np.abs(e.map - ref.map) <= 1.96 * np.sqrt(e.stderr.astype(np.float64) ** 2
                                                                         + ref.stderr.astype(np.float64) ** 2)))
    assert BAND[0] <= float(np.mean(covs)) <= BAND[1], np.mean(covs)


def test_deterministic_methods_report_zero(region_model):
    model, _ = region_model
    pic = onnx_models.region_picture()
    for method in ("occlusion", "feature-ablation"):
        e = onnxai.explain(model, pic, method=method, target=1)
        assert e.stderr is not None and not np.any(e.stderr)
    e = onnxai.PermutationSHAP(num_samples=None, num_features=4, segmentation="grid").explain(model, pic, target=1)
    assert not np.any(e.stderr)


def test_stderr_is_saved_and_loaded(region_model, tmp_path):
    model, _ = region_model
    e = onnxai.LIME(num_samples=200, surrogate="ridge", segmentation="grid", num_features=16).explain(
        model, onnx_models.region_picture(), target=1)
    e.save(tmp_path / "lime")
    back = onnxai.Explanation.load(tmp_path / "lime")
    np.testing.assert_array_equal(back.stderr, e.stderr)
    assert back.unsettled().shape == e.map.shape


def test_design_variance_sums_the_rows_of_a_unit_before_the_variance():
    """Units of 1, 2 or 3 rows in any order: the same covariance as summing each unit's rows by hand
    first (the with-replacement formula m/(m-1) sum (u - mean)(u - mean)^T over the unit sums)."""
    rng = np.random.default_rng(3)
    for trial in range(20):
        n, k = 60, 3
        t = rng.standard_normal((n, k))
        units = rng.permutation(np.repeat(np.arange(25), 3)[:n]) if trial % 2 else rng.integers(0, 40, n)
        ids = np.unique(units)
        sums = np.stack([t[units == u].sum(axis=0) for u in ids])
        d = sums - sums.mean(axis=0)
        want = d.T @ d * len(ids) / (len(ids) - 1)
        np.testing.assert_allclose(design_variance(t, units), want, rtol=1e-12, atol=1e-12)
    one = rng.standard_normal((30, 2))  # one row a unit
    d = one - one.mean(axis=0)
    np.testing.assert_allclose(design_variance(one, rng.permutation(30)), d.T @ d * 30 / 29, rtol=1e-12)
