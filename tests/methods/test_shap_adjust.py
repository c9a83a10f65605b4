"""Kernel SHAP's regression adjustment (KernelSHAP(adjust=c), methods.shap_adjust): the same Shapley
values, less noise on a game a surrogate can follow, efficiency exact, bit for bit per seed, clear errors."""

import numpy as np
import pytest

import onnxai
import onnx_models
from onnxai.errors import InputError
from onnxai.kernels.coalitions import shapley_coalitions
from onnxai.methods.shap_adjust import FLOOR, adjust, big_design, check_adjust, choose_c


def test_full_budget_adjusted_equals_plain():
    # every coalition scored: the run's fit of g and g's exact Shapley values cancel, whatever g is
    model, pic, segments = onnx_models.nine_cell_picture()
    plain = onnxai.KernelSHAP(num_samples=2 ** 9, segmentation=segments, fill="mean", progress=False)
    adj = onnxai.KernelSHAP(num_samples=2 ** 9, segmentation=segments, fill="mean", progress=False, adjust=0.5)
    for a, b in zip(plain.explain(model, pic, target=[0, 2]), adj.explain(model, pic, target=[0, 2])):
        np.testing.assert_allclose(b.importance, a.importance, atol=1e-9)
        assert b.params["adjust"] == 0.5 and "adjust" not in a.params


def test_adjusted_run_keeps_efficiency_and_repeats_bit_for_bit():
    model, pic, segments = onnx_models.nine_cell_picture()
    make = lambda: onnxai.KernelSHAP(num_samples=60, segmentation=segments, fill="mean", seed=4, progress=False,
                                     adjust=0.5)
    a, b = make().explain(model, pic, target=1), make().explain(model, pic, target=1)
    plain = onnxai.KernelSHAP(num_samples=60, segmentation=segments, fill="mean", seed=4,
                              progress=False).explain(model, pic, target=1)
    np.testing.assert_array_equal(a.importance, b.importance)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    assert abs(a.extras["efficiency_gap"]) <= 1e-9
    assert not np.allclose(a.importance, plain.importance)  # the correction did something
    assert np.isfinite(a.stderr).all() and (a.stderr > 0).any()


def test_adjustment_cuts_the_error_on_a_smooth_game():
    # a game a tree ensemble can follow (a sigmoid of an additive score plus one interaction), exact
    # Shapley values from every coalition; with c = 0.5 the error at 120 coalitions falls (1.45x over
    # these 12 seeds; with the correction's sign flipped it grows 1.8x)
    M = 10
    b = np.random.default_rng(0).normal(0, 1, M)

    def game(Z):
        Z = Z.astype(float)
        return 1 / (1 + np.exp(1.0 - Z @ b)) + 0.3 * Z[:, 0] * Z[:, 1] * Z[:, 2]

    ks = onnxai.KernelSHAP()
    full, fw = shapley_coalitions(M, 2 ** M - 2, 0)
    f0, f1 = game(np.zeros((1, M))), game(np.ones((1, M)))
    exact = ks.solve(full, fw, game(full)[:, None], f0, f1, [0])[:, 0]
    big = big_design(M, 1)
    plain, adjusted, covered = [], [], []
    for s in range(12):
        Z, w = shapley_coalitions(M, 120, s + 10)
        y = game(Z)[:, None]
        plain.append(ks.solve(Z, w, y, f0, f1, [0])[:, 0])
        phi, residual, _ = adjust(ks.solve, Z, w, y, f0, f1, [0], 0.5, s, big, ks.design(Z)[0])
        adjusted.append(phi[:, 0])
        covered.append(np.abs(phi[:, 0] - exact) <= 1.96 * ks.stderr(Z, w, *residual, [0])[:, 0])
    err = lambda e: float(np.mean((np.array(e) - exact) ** 2))
    assert err(adjusted) < err(plain) / 1.15
    # the out-of-fold residuals' 95% intervals (in-sample residuals, shrunk by g's fit, covered ~77%)
    assert 0.85 <= np.mean(covered) <= 0.99


def test_auto_c_is_cov_over_var_of_the_fit():
    # g_out = k * y: Var(L g) = k^2 Var(L y) and Cov = k Var(L y), so Cov / Var = 1 / k exactly; floored
    # at FLOOR and capped at 1; a g_out unrelated to y (Cov about 0) falls to the floor
    M = 8
    ks = onnxai.KernelSHAP()
    Z, w = shapley_coalitions(M, 100, 3)
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, (Z.shape[0], 2)) + Z @ rng.normal(0, 1, (M, 2))
    ends = (np.array([0.1, -0.2]), np.array([1.0, 2.0]))
    c = choose_c(ks.solve, ks.stderr, Z, w, y, y * np.array([1.25, 0.8]), ends,
                 (ends[0] * [1.25, 0.8], ends[1] * [1.25, 0.8]))
    np.testing.assert_allclose(c, [0.8, 1.0], rtol=1e-9)
    c = choose_c(ks.solve, ks.stderr, Z, w, y, y * 4.0, ends, (ends[0] * 4, ends[1] * 4))
    np.testing.assert_allclose(c, [FLOOR, FLOOR])
    noise = rng.normal(0, 1, y.shape)
    assert (choose_c(ks.solve, ks.stderr, Z, w, y, noise, ends, (ends[0] * 0, ends[1] * 0)) == FLOOR).all()


def test_auto_adjust_on_a_picture_reports_its_c():
    model, pic, segments = onnx_models.nine_cell_picture()
    make = lambda: onnxai.KernelSHAP(num_samples=60, segmentation=segments, fill="mean", seed=4, progress=False,
                                     adjust="auto")
    es = make().explain(model, pic, target=[0, 1])
    again = make().explain(model, pic, target=[0, 1])
    for e, f in zip(es, again):
        assert e.params["adjust"] == "auto"
        assert FLOOR <= e.extras["adjust_c"] <= 1
        assert abs(e.extras["efficiency_gap"]) <= 1e-9
        np.testing.assert_array_equal(e.importance, f.importance)
    # the c it reports is the c it used: a fixed run at that c gives the same values
    c = es[0].extras["adjust_c"]
    fixed = onnxai.KernelSHAP(num_samples=60, segmentation=segments, fill="mean", seed=4, progress=False,
                              adjust=c).explain(model, pic, target=0)
    np.testing.assert_allclose(fixed.importance, es[0].importance, atol=1e-12)
    assert fixed.extras["adjust_c"] == c


def test_cli_adjust(tmp_path):
    from click.testing import CliRunner

    from onnxai.cli import main

    path, pic = onnx_models.region_files(tmp_path)
    args = ["explain", str(path), str(pic), "--method", "kernel-shap", "--samples", "80", "--features", "9",
            "--segmentation", "grid", "--resize", "16", "--size", "16", "--no-progress"]
    r = CliRunner().invoke(main, args + ["--adjust", "AUTO", "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert "adjust_c=" in r.output  # the c it chose is printed
    auto = [a if a != "80" else "auto" for a in args] + ["--max-samples", "200", "--adjust", "0.5"]
    r = CliRunner().invoke(main, auto + ["--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert "adjust_c=0.5" in r.output and "samples" in r.output
    r = CliRunner().invoke(main, args + ["--adjust", "1.5", "--out", str(tmp_path / "b")])
    assert r.exit_code != 0 and "neither a number in (0, 1] nor 'auto'" in r.output
    r = CliRunner().invoke(main, args + ["--adjust", "some", "--out", str(tmp_path / "c")])
    assert r.exit_code != 0 and "neither a number in (0, 1] nor 'auto'" in r.output


@pytest.mark.parametrize("value", [0, -0.5, 1.5, "half", True, float("nan")])
def test_adjust_must_be_a_coefficient(value):
    with pytest.raises(InputError, match="adjust"):
        onnxai.KernelSHAP(adjust=value)


def test_adjust_accepts_auto_in_any_case():
    assert check_adjust(" Auto ") == "auto" and check_adjust(None) is None and check_adjust(1) == 1.0


def test_auto_budget_with_adjust_stops_as_plain_and_adjusts_the_final_map():
    from onnxai import engine
    from onnxai.methods.fills import make_fill

    model, pic, segments = onnx_models.nine_cell_picture()
    make = lambda adj: onnxai.KernelSHAP(num_samples="auto", max_samples=300, tolerance=0.01, segmentation=segments,
                                         fill="mean", seed=2, progress=False, adjust=adj)
    plain = make(None).explain(model, pic, target=1)
    adjusted = make(0.5).explain(model, pic, target=1)
    n = plain.extras["num_samples"]
    assert 100 <= n and adjusted.extras["num_samples"] == n and adjusted.extras["stopped"] == plain.extras["stopped"]
    assert adjusted.extras["adjust_c"] == 0.5 and abs(adjusted.extras["efficiency_gap"]) <= 1e-9
    # the final map is shap_adjust.adjust on the n coalitions the rule stopped at, scored by brute force here
    ks = make(0.5)
    ks.coalitions(9)
    masks, weights, used = ks.prefix(9, n)
    x, crop = model.prepare(pic)
    fill = make_fill(model, crop, x, "mean", segments=segments)
    res = engine.run(model, x, fill, engine.FeatureMasks(np.r_[masks, np.zeros((1, 9), np.uint8)], segments))
    scores, fnull, fx = res.scores[:used], res.scores[used], model.run_batch(x)[0]
    phi = adjust(ks.solve, masks, weights, scores, fnull, fx, [1], 0.5, 2, big_design(9, 3), ks.design(masks)[0])[0]
    np.testing.assert_allclose(adjusted.importance, phi[:, 0], atol=1e-5)
    assert np.abs(adjusted.importance - plain.importance).max() > 1e-4


def test_adjust_needs_a_plain_fit_and_a_picture():
    with pytest.raises(InputError, match="l1_reg=False"):
        onnxai.KernelSHAP(l1_reg="num_features(3)", adjust=0.5)
    model = onnx_models.linear_model(np.ones(3), 0.0)
    with pytest.raises(InputError, match="for pictures"):
        onnxai.KernelSHAP(adjust=0.5, background=np.zeros((2, 3)), score="raw").explain(model, np.ones((1, 3)))
