"""Kernel SHAP on pictures and tables: exact Shapley values at a full budget, efficiency, linear models,
agreement with the shap package (tables made by skl2onnx), coalitions."""

import math

import numpy as np
import pytest

import onnxai
import onnx_models
from onnx_models import linear_model, mlp_model, sklearn_onnx
from onnxai.kernels.coalitions import shapley_coalitions, shapley_kernel_sizes
from onnxai.kernels.shapley import shapley_solve


# --------------------------------------------------------------------------- references


def exact_shapley(value, M):
    """Brute force: phi_i = sum_S |S|! (M-|S|-1)! / M! (v(S + i) - v(S)); value: (2^M, M) masks -> (2^M, C)."""
    codes = np.arange(2 ** M)
    masks = ((codes[:, None] >> np.arange(M)[None, :]) & 1).astype(np.uint8)
    v = value(masks)
    sizes = masks.sum(axis=1)
    phi = np.zeros((M, v.shape[1]))
    for i in range(M):
        without = codes[(codes >> i) & 1 == 0]
        s = sizes[without]
        w = np.array([math.factorial(k) * math.factorial(M - k - 1) / math.factorial(M) for k in s])
        phi[i] = (w[:, None] * (v[without | (1 << i)] - v[without])).sum(axis=0)
    return phi


def table_value(model, x, bg, bw, kind="probabilities"):
    def value(masks):
        rows = np.where(masks[:, None, :].astype(bool), x[None, None, :], bg[None, :, :])  # (2^M, b, M)
        s = model.scores(rows.reshape(-1, x.size).astype(np.float32), kind).astype(np.float64)
        return (s.reshape(masks.shape[0], bg.shape[0], -1) * bw[None, :, None]).sum(axis=1)
    return value


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("M, sampling", [(2, "stratified"), (5, "stratified"), (9, "stratified"), (12, "stratified"),
                                         (5, "shap"), (9, "shap"), (5, "leverage"), (9, "leverage")])
def test_full_budget_equals_brute_force_shapley_nonlinear(M, sampling):
    model = mlp_model(M, seed=M)
    rng = np.random.default_rng(M)
    X = rng.standard_normal((2, M))
    bg = rng.standard_normal((4, M))
    ks = onnxai.KernelSHAP(nsamples=2 ** M, background=onnxai.tables.Background(bg, [1, 2, 3, 4]), sampling=sampling)
    e = ks.explain(model, X)
    assert e.values.shape == (2, M, 3)
    for r in range(2):
        ref = exact_shapley(table_value(model, X[r], ks.background.data, ks.background.weights), M)
        assert np.abs(e.values[r] - ref).max() <= 1e-6
        # efficiency: sum phi = f(x) - E f(background), every class
        np.testing.assert_allclose(e.values[r].sum(axis=0), e.predictions[r] - e.base_values, atol=1e-9)
    assert e.extras["num_samples"] == [2 ** M - 2] * 2


def test_raw_outputs_and_a_dummy_feature():
    model = mlp_model(6, softmax=False, seed=1)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((1, 6))
    bg = rng.standard_normal((3, 6))
    bg[:, 2] = X[0, 2]  # never varies: shap gives it 0 and explains the other 5
    e = onnxai.KernelSHAP(nsamples=None, background=bg, kind="raw").explain(model, X)
    ref = exact_shapley(table_value(model, X[0], bg, np.full(3, 1 / 3), "raw"), 6)
    assert np.abs(e.values[0] - ref).max() <= 1e-5
    assert np.all(e.values[0, 2] == 0)


def test_linear_model_gives_w_times_x_minus_mean():
    rng = np.random.default_rng(2)
    M = 20  # too many for enumeration: sampled coalitions must still be exact for a linear model
    w = rng.standard_normal(M)
    model = linear_model(w, 0.7)
    train = rng.standard_normal((200, M)) * 2 + 1
    X = rng.standard_normal((3, M))
    e = onnxai.KernelSHAP(nsamples=500, background=train, summarise="all", kind="raw").explain(model, X)
    expected = w[None, :] * (X - train.mean(axis=0)[None, :])
    assert np.abs(e.values[:, :, 0] - expected).max() <= 1e-4  # float32 model arithmetic
    np.testing.assert_allclose(e.base_values[0], train.mean(axis=0) @ w + 0.7, rtol=1e-5)


def test_image_kernel_shap_full_budget_is_exact():
    model, pic, segments = onnx_models.nine_cell_picture()
    ks = onnxai.KernelSHAP(nsamples=2 ** 9, segmentation=segments, fill="mean")
    expls = ks.explain(model, pic, target=[0, 1, 2, 3])
    x, crop = model.prepare(pic)
    base = onnxai.methods.fills.make_fill(model, crop, x, "mean")

    def value(masks):
        pix = masks[:, segments].astype(np.float32)[:, None]
        return model.scores(base + pix * (x - base)).astype(np.float64)

    ref = exact_shapley(value, 9)
    for e in expls:
        assert np.abs(e.importance - ref[:, e.target]).max() <= 1e-6
        assert abs(e.extras["efficiency_gap"]) <= 1e-6
        np.testing.assert_allclose(e.map, e.importance[segments])


# --------------------------------------------------------------------------- the coalition design


def test_coalitions_match_shap_design():
    masks, w = shapley_coalitions(10, 300, seed=0, sampling="shap")
    assert masks.shape == (300, 10) and w.sum() == pytest.approx(1.0)
    sizes = masks.sum(axis=1)
    # sizes 1 and 9 (20 rows) and 2 and 8 (90 rows) are enumerated whole: 110 rows, then sampling
    assert sorted(sizes[:20]) == [1] * 10 + [9] * 10 and set(sizes[20:110]) == {2, 8}
    # sampled sizes 1..4 come with their complement right after; size 5 (its own complement size) alone
    i, firsts = 110, []
    while i < 300:
        firsts.append(masks[i].tobytes())
        if sizes[i] <= 4 and i + 1 < 300:
            assert np.all(masks[i] + masks[i + 1] == 1)
            i += 2
        else:
            i += 1
    assert len(set(firsts)) == len(firsts)  # repeats are merged into weights, never scored twice
    again = shapley_coalitions(10, 300, seed=0, sampling="shap")
    assert np.array_equal(masks, again[0]) and np.array_equal(w, again[1])
    assert not np.array_equal(masks, shapley_coalitions(10, 300, seed=1, sampling="shap")[0])


def _kernel_mass(M):
    """Shapley-kernel mass of each size 1..M-1, summing to 1."""
    s = np.arange(1, M)
    m = (M - 1) / (s * (M - s))
    return m / m.sum()


@pytest.mark.parametrize("sampling", ["stratified", "leverage"])
@pytest.mark.parametrize("M, n", [(12, 1000), (10, 200), (10, 301), (7, 50), (15, 40), (30, 1000), (12, 4093)])
def test_stratified_design(M, n, sampling):
    masks, w = shapley_coalitions(M, n, seed=3, sampling=sampling)
    assert masks.shape == (min(n, 2 ** M - 2), M)  # exactly the budget, nothing merged away
    assert w.sum() == pytest.approx(1.0, abs=1e-12) and np.all(w > 0)
    assert len({r.tobytes() for r in masks}) == masks.shape[0]  # without replacement: no repeats
    assert not np.any(masks.all(axis=1)) and np.any(masks, axis=1).all()  # never the empty or full one
    # every row's complement is there too, but for at most one lone row (an odd budget)
    rows = {r.tobytes() for r in masks}
    lone = sum((1 - r).astype(np.uint8).tobytes() not in rows for r in masks)
    assert lone <= n % 2
    # each size keeps its kernel mass: the size s and M - s rows together weigh mass(s) + mass(M - s)
    sizes = masks.sum(axis=1)
    mass = _kernel_mass(M)
    for s in range(1, M // 2 + 1):
        both = (sizes == s) | (sizes == M - s)
        assert both.any()
        want = mass[s - 1] + (mass[M - s - 1] if 2 * s != M else 0.0)
        assert w[both].sum() == pytest.approx(want, rel=1e-9)
        # within a size, one weight: (mass of the size) / (rows drawn at it)
        assert np.ptp(w[both]) <= 1e-15
    again = shapley_coalitions(M, n, seed=3, sampling=sampling)
    assert np.array_equal(masks, again[0]) and np.array_equal(w, again[1])
    if n < 2 ** M - 2:
        assert not np.array_equal(masks, shapley_coalitions(M, n, seed=4, sampling=sampling)[0])


def test_stratified_allocates_in_proportion_to_kernel_mass():
    M, n = 12, 1000
    masks, w = shapley_coalitions(M, n, seed=0)
    sizes = np.minimum(masks.sum(axis=1), M - masks.sum(axis=1))
    counts = np.bincount(sizes, minlength=M // 2 + 1)[1:]
    # sizes 1 and 2 (24 + 132 rows) are enumerated whole, the 844 left are spread by kernel mass
    assert counts[0] == 24 and counts[1] == 132
    mass = _kernel_mass(M)
    strata = np.array([mass[s - 1] + (mass[M - s - 1] if 2 * s != M else 0) for s in range(3, 7)])
    quota = 844 * strata / strata.sum()
    assert np.all(np.abs(counts[2:] - quota) <= 2.0) and counts[2:].sum() == 844
    with pytest.raises(onnxai.InputError, match="sampling"):
        shapley_coalitions(M, n, sampling="random")
    with pytest.raises(onnxai.InputError, match="sampling"):
        onnxai.KernelSHAP(sampling="random")


@pytest.mark.parametrize("M, n, enumerated", [(12, 1000, 2), (20, 100, 0), (11, 301, 1), (10, 200, 1)])
def test_leverage_spreads_the_budget_evenly_over_sizes(M, n, enumerated):
    """Leverage SHAP: every size not enumerated gets the same number of rows (within one pair)."""
    masks, w = shapley_coalitions(M, n, seed=5, sampling="leverage")
    assert masks.shape == (n, M) and len({r.tobytes() for r in masks}) == n
    sizes = masks.sum(axis=1)
    counts = np.bincount(sizes, minlength=M + 1)[1:M]
    small = [math.comb(M, s) for s in range(1, enumerated + 1)]
    # the smallest (and largest) sizes fit whole: enumerated, the rest spread evenly
    assert list(counts[:enumerated]) == small and list(counts[M - 1 - enumerated:][::-1]) == small
    sampled = counts[enumerated:M - 1 - enumerated]
    quota = (n - 2 * sum(small)) / sampled.size
    assert np.all(np.abs(sampled - quota) <= 2.0), (sampled, quota)
    # complementary pairs, row after row (an odd budget: one lone row at the end of its stratum)
    pairs = (masks[0::2][: n // 2] + masks[1::2][: n // 2] == 1).all(axis=1)
    assert pairs.sum() >= n // 2 - 1
    again = shapley_coalitions(M, n, seed=5, sampling="leverage")
    assert np.array_equal(masks, again[0]) and np.array_equal(w, again[1])
    other = shapley_coalitions(M, n, seed=6, sampling="leverage")[0]
    assert {r.tobytes() for r in other} != {r.tobytes() for r in masks}
    # the stratified design puts these rows elsewhere: by kernel mass, mostly on the small sizes
    strat = np.bincount(shapley_coalitions(M, n, seed=5)[0].sum(axis=1), minlength=M + 1)[1:M]
    assert not np.array_equal(strat, counts)


def _threshold_game(M=10):
    """A game with known Shapley values: a.z + 2 [at least 2 of features 0-4] + 3 z5 z6 + 1.5 (z7 or z8);
    -> (v over all 2^M coalitions, row = coalition code; exact phi)."""
    a = np.linspace(-1, 1, M)
    codes = np.arange(2 ** M)
    z = ((codes[:, None] >> np.arange(M)[None, :]) & 1).astype(np.float64)
    v = z @ a + 2 * (z[:, :5].sum(axis=1) >= 2) + 3 * z[:, 5] * z[:, 6] + 1.5 * np.maximum(z[:, 7], z[:, 8])
    exact = a.copy()
    exact[:5] += 2 / 5
    exact[[5, 6]] += 1.5
    exact[[7, 8]] += 0.75
    return v[:, None], exact


def test_leverage_design_is_centred_on_the_shapley_values():
    """Mean over 40 seeds of the leverage design's estimate at 300 of 1022 coalitions is within 0.025 of
    the exact values (its bias is ~0.007, the s.e. of the mean ~0.004); rows weighted by their kernel
    weight alone, or by their size's mass without the 1 / (rows drawn) factor, are off by ~0.05."""
    M, n = 10, 300
    v, exact = _threshold_game(M)
    pw = 1 << np.arange(M)
    wv = shapley_kernel_sizes(M, 0)["weights"]
    est = {"leverage": [], "kernel weight only": [], "no 1/(rows drawn)": []}
    for seed in range(40):
        masks, w = shapley_coalitions(M, n, seed, "leverage")
        y = v[masks.astype(np.int64) @ pw] - v[0]
        s = masks.sum(axis=1)
        k = (M - 1) / (np.array([math.comb(M, int(t)) for t in s]) * s * (M - s))
        mass = wv[np.minimum(s, M - s) - 1]
        for name, ww in zip(est, (w, k / k.sum(), mass / mass.sum())):
            est[name].append(shapley_solve(masks, ww, y, v[-1] - v[0])[:, 0])
    phi = np.array(est.pop("leverage"))
    mse = np.mean((phi - exact) ** 2)
    assert np.isfinite(mse) and mse < 0.01
    assert np.abs(phi.mean(axis=0) - exact).max() <= 0.025
    for name, wrong in est.items():
        assert np.abs(np.mean(wrong, axis=0) - exact).max() > 0.04, name


def test_stratified_error_is_not_larger_than_shap_design():
    """At a budget of 200 of 1022 coalitions, M = 10: mean RMSE against exact Shapley values, 3 models x 10 seeds."""
    M = 10
    codes = np.arange(2 ** M)
    allm = ((codes[:, None] >> np.arange(M)[None, :]) & 1).astype(np.uint8)
    pw = 1 << np.arange(M)
    err = {"shap": [], "stratified": []}
    for ms in range(3):
        model = mlp_model(M, seed=ms)
        rng = np.random.default_rng(ms)
        x, bg = rng.standard_normal(M), rng.standard_normal((4, M))
        v = table_value(model, x, bg, np.full(4, 0.25))(allm)  # (2^M, C), row = coalition code
        ref = exact_shapley(lambda masks: v, M)
        for sampling in err:
            for seed in range(10):
                masks, w = shapley_coalitions(M, 200, seed, sampling)
                phi = shapley_solve(masks, w, v[masks.astype(np.int64) @ pw] - v[0], v[-1] - v[0])
                np.testing.assert_allclose(phi.sum(axis=0), v[-1] - v[0], atol=1e-9)
                err[sampling].append(np.sqrt(np.mean((phi - ref) ** 2)))
    assert np.mean(err["stratified"]) <= np.mean(err["shap"])


def test_enumerated_weights_are_the_shapley_kernel():
    M = 7
    masks, w = shapley_coalitions(M, 2 ** M, seed=0)
    assert masks.shape[0] == 2 ** M - 2
    s = masks.sum(axis=1)
    kern = (M - 1) / (np.array([math.comb(M, k) for k in s]) * s * (M - s))
    np.testing.assert_allclose(w / w.sum(), kern / kern.sum())


def test_solve_keeps_efficiency_exactly_with_few_samples():
    rng = np.random.default_rng(0)
    masks, w = shapley_coalitions(15, 40, seed=2)
    y = rng.standard_normal((masks.shape[0], 3))
    phi = shapley_solve(masks, w, y, [1.0, -2.0, 0.5])
    np.testing.assert_allclose(phi.sum(axis=0), [1.0, -2.0, 0.5], atol=1e-12)


def test_l1_num_features_keeps_k_features():
    model = mlp_model(12, seed=5)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((1, 12))
    bg = rng.standard_normal((3, 12))
    e = onnxai.KernelSHAP(nsamples=300, background=bg, l1_reg="num_features(4)").explain(model, X)
    assert all(np.count_nonzero(e.values[0, :, c]) <= 4 for c in range(3))
    np.testing.assert_allclose(e.values[0].sum(axis=0), e.predictions[0] - e.base_values, atol=1e-9)
    with pytest.raises(onnxai.InputError, match="l1_reg"):
        onnxai.KernelSHAP(l1_reg="lots")


def test_tables_need_a_background():
    model = mlp_model(4)
    with pytest.raises(onnxai.InputError, match="background"):
        onnxai.KernelSHAP().explain(model, np.zeros((1, 4)))
    with pytest.raises(onnxai.InputError, match="takes 4 features"):
        onnxai.KernelSHAP(background=np.zeros((3, 4))).explain(model, np.zeros((1, 5)))


def test_kernel_shap_agrees_with_shap_package(cancer, forest):
    shap = pytest.importorskip("shap")
    from shap.utils._legacy import DenseData

    X, y = cancer
    model = onnxai.load(sklearn_onnx(forest, X, zipmap=True), providers="cpu")
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
    rf = pytest.importorskip("sklearn.ensemble").RandomForestClassifier(20, max_depth=5, random_state=1).fit(Xs, y)
    model = onnxai.load(sklearn_onnx(rf, Xs, zipmap=True), providers="cpu")
    ks = onnxai.KernelSHAP(nsamples=2 ** 10, background=Xs, background_size=5)
    e = ks.explain(model, Xs[[3, 7]])
    bg = ks.background_for(model, Xs[[3, 7]])
    sess = model.session
    ex = shap.KernelExplainer(lambda Z: sess.run([model.output], {"X": Z.astype(np.float32)})[0],
                              DenseData(bg.data, [str(i) for i in range(10)], None, bg.weights))
    ref = np.asarray(ex.shap_values(Xs[[3, 7]], nsamples=2 ** 10, l1_reg=False, silent=True))
    assert np.abs(e.values - ref).max() <= 1e-6


def test_kernel_shap_on_logits_of_a_probability_model_is_shaps_logit_link(cancer):
    """score="logits" on a model that outputs only probabilities explains each class's log-odds; for a
    binary classifier that is shap's link="logit" on class 1 (exact, all 2^8 coalitions). One background
    row: with several, onnxai averages the rows' log-odds where shap takes the log-odds of their mean
    probability (two games; the README says which onnxai plays)."""
    shap = pytest.importorskip("shap")
    from shap.utils._legacy import DenseData

    X, y = cancer
    Xs = X[:, :8]
    lr = pytest.importorskip("sklearn.linear_model").LogisticRegression(max_iter=2000).fit(Xs, y)
    model = onnxai.load(sklearn_onnx(lr, Xs, zipmap=True), providers="cpu")
    ks = onnxai.KernelSHAP(num_samples=2 ** 8, background=Xs, background_size=1, score="logits")
    e = ks.explain(model, Xs[[3, 7]], target=1)
    bg = ks.background_for(model, Xs[[3, 7]])
    sess = model.session
    ex = shap.KernelExplainer(lambda Z: sess.run([model.output], {"X": Z.astype(np.float32)})[0][:, 1],
                              DenseData(bg.data, [str(i) for i in range(8)], None, bg.weights), link="logit")
    ref = np.asarray(ex.shap_values(Xs[[3, 7]], nsamples=2 ** 8, l1_reg=False, silent=True))
    np.testing.assert_allclose(e.values[:, :, 1], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(e.values[:, :, 0], -ref, rtol=1e-4, atol=1e-4)  # class 0's log-odds: the negation
