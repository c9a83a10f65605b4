"""The perturb-and-score loop: chunking, overlap, layouts, all-class scores, memory."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import onnxai
from onnxai import engine, kernels
import onnx_models

PRE = onnxai.Preprocess(resize=None, crop=16, mean=(0.5,) * 3, std=(0.25,) * 3)


def _reference_scores(model, x, baseline, masks, segments):
    """Materialise every perturbed input with plain numpy and score them in one go."""
    xc = engine.channels_first(model, x).astype(np.float64)
    bc = engine.channels_first(model, baseline).astype(np.float64)
    pix = masks[:, segments].astype(np.float64)[:, None]  # n,1,H,W
    batch = bc + pix * (xc - bc)
    if model.input.layout == "NHWC":
        batch = batch.transpose(0, 2, 3, 1)
    return model.scores(batch.astype(np.float32))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("overlap", [True, False])
def test_feature_masks_match_materialised_reference(layout, overlap):
    model = onnx_models.region_model(layout=layout, batch_size=7)[0]  # 7 does not divide 50: a short last chunk
    x, crop = model.prepare(onnx_models.region_picture())
    baseline = np.zeros_like(x)
    segments = (np.arange(16)[:, None] // 4 * 4 + np.arange(16)[None, :] // 4).astype(np.int32)
    masks = kernels.random_binary_masks(50, 16, seed=3)
    res = engine.run(model, x, baseline, engine.FeatureMasks(masks, segments), overlap=overlap, progress=False)
    ref = _reference_scores(model, x, baseline, masks, segments)
    assert res.scores.shape == (50, 2)
    np.testing.assert_allclose(res.scores, ref, rtol=1e-5, atol=1e-6)
    assert res.chunk == 7
    assert res.forward_s > 0


def test_overlap_and_serial_give_identical_bits():
    model = onnx_models.region_model(batch_size=8)[0]
    x, _ = model.prepare(onnx_models.region_picture())
    soft = np.random.default_rng(0).random((40, 16, 16)).astype(np.float32)
    a = engine.run(model, x, np.zeros_like(x), engine.SoftMasks(40, masks=soft), overlap=True, progress=False)
    b = engine.run(model, x, np.zeros_like(x), engine.SoftMasks(40, make=lambda s, e: soft[s:e]), overlap=False,
                   progress=False)
    assert np.array_equal(a.scores, b.scores)


def test_chunk_respects_memory_budget():
    model = onnx_models.region_model(batch_size=64)[0]
    per_input = 3 * 16 * 16 * 4
    assert engine.chunk_size_for(model, 1000, memory_budget=2 * per_input * 5) == 5
    assert engine.chunk_size_for(model, 1000) == 64
    assert engine.chunk_size_for(model, 3) == 3


def test_logits_kind_scores_every_class():
    model = onnx_models.region_model()[0]
    x, _ = model.prepare(onnx_models.region_picture())
    windows = kernels.sliding_windows(16, 16, (4, 4), (4, 4))
    res = engine.run(model, x, np.zeros_like(x), engine.WindowMasks(windows), kind="logits", progress=False)
    assert res.scores.shape == (windows.shape[0], 2)
    assert np.all(res.scores[:, 0] == 0)  # class 0's logit is the constant 0 in this graph


def test_engine_refuses_a_batch():
    model = onnx_models.region_model()[0]
    x, _ = model.prepare(onnx_models.region_picture())
    with pytest.raises(onnxai.InputError, match="one input at a time"):
        engine.run(model, np.concatenate([x, x]), np.zeros_like(x), engine.WindowMasks(np.zeros((1, 4), np.int32)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc/self/status")
def test_memory_stays_bounded_for_10000_samples(tmp_path):
    """10,000 perturbed 3x256x256 inputs would need 7.9 GB if materialised; the engine needs O(chunk)."""
    m, _ = onnx_models.region_net(size=256, region=(64, 192, 64, 192))
    path = tmp_path / "big.onnx"
    onnx_models.save(m, path)
    code = textwrap.dedent(f"""
        import numpy as np, onnxai
        from onnxai import engine, kernels
        model = onnxai.load({str(path)!r}, providers="cpu", batch_size=32,
                            preprocess=onnxai.Preprocess(resize=None, crop=256))
        x = np.zeros((1, 3, 256, 256), np.float32)
        seg = (np.arange(256)[:, None] // 32 * 8 + np.arange(256)[None, :] // 32).astype(np.int32)
        masks = kernels.random_binary_masks(10000, 64, seed=0)
        def hwm():  # this process's own peak RSS in kB (ru_maxrss would inherit the parent's over fork+exec)
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        before = hwm()
        res = engine.run(model, x + 1, x, engine.FeatureMasks(masks, seg), memory_budget=64 * 2**20, progress=False)
        after = hwm()
        assert res.scores.shape == (10000, 2)
        print((after - before) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={"ONNXAI_QUIET": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    increase_mb = float(out.stdout.strip().splitlines()[-1])
    assert increase_mb < 1024, f"peak RSS grew by {increase_mb:.0f} MB"


# --------------------------------------------------------------------------- table coalitions and end points


def _coalition_rows(x, background, masks):
    """numpy: row i * b + j keeps x where masks[i] is 1 and takes background row j elsewhere."""
    return np.where(masks[:, None, :].astype(bool), x[None, None, :], background[None, :, :]).reshape(-1, x.size)


def test_table_coalitions_composite_fold_and_end_points_equal_numpy():
    rng = np.random.default_rng(0)
    M, b, C = 5, 3, 4
    x = rng.standard_normal(M).astype(np.float32)
    background = rng.standard_normal((b, M)).astype(np.float32)
    weights = rng.random(b)
    weights /= weights.sum()
    masks = (rng.random((7, M)) < 0.5).astype(np.uint8)
    src = engine.TableCoalitions(masks, background, weights)
    assert src.n == 7 and src.rows_per_mask == b
    out = np.full((3 * b, M), np.nan, np.float32)
    src.composite(x, None, 2, 5, out)
    np.testing.assert_array_equal(out, _coalition_rows(x, background, masks[2:5]))
    # the end points: 0 writes the row on every background row, 1 the background rows themselves
    end = np.full((b, M), np.nan, np.float32)
    src.composite_end(0, x, None, end)
    np.testing.assert_array_equal(end, np.broadcast_to(x, (b, M)))
    src.composite_end(1, x, None, end)
    np.testing.assert_array_equal(end, background)
    # the fold: per mask, the background-weighted mean of its b rows' scores
    scores = rng.standard_normal((3 * b, C)).astype(np.float32)
    want = np.einsum("mbc,b->mc", scores.reshape(3, b, C).astype(np.float64), weights)
    np.testing.assert_allclose(src.fold(scores, 3), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ends", [0, 1, 2])
def test_run_over_table_coalitions_with_end_points_equals_numpy(table_model, ends):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4)).astype(np.float32)
    background = rng.standard_normal((3, 4)).astype(np.float32)
    weights = np.array([0.5, 0.3, 0.2])
    masks = (rng.random((11, 4)) < 0.5).astype(np.uint8)
    # 7 rows per run: 2 masks (6 rows) per chunk, so the end points straddle the chunk boundaries
    res = engine.run(table_model, x, None, engine.TableCoalitions(masks, background, weights), chunk_size=7,
                     progress=False, ends=ends)
    assert res.chunk == 2
    s = table_model.scores(_coalition_rows(x[0], background, masks)).astype(np.float64)
    want = np.einsum("mbc,b->mc", s.reshape(11, 3, -1), weights)
    assert res.scores.shape == want.shape  # the mask chunks are unchanged by the end points
    np.testing.assert_allclose(res.scores, want, rtol=1e-5, atol=1e-6)
    if ends == 0:
        assert res.input_scores is None and res.baseline_scores is None
        return
    np.testing.assert_allclose(res.input_scores, table_model.scores(x)[0], rtol=1e-5, atol=1e-6)
    if ends == 1:
        assert res.baseline_scores is None
    else:  # the table's baseline is the background: its weighted mean score
        np.testing.assert_allclose(res.baseline_scores, weights @ table_model.scores(background).astype(np.float64),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ends", [1, 2])
def test_run_with_end_points_scores_the_input_and_the_baseline(ends):
    model = onnx_models.region_model(batch_size=7)[0]
    x, _ = model.prepare(onnx_models.region_picture())
    baseline = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    segments = (np.arange(16)[:, None] // 4 * 4 + np.arange(16)[None, :] // 4).astype(np.int32)
    masks = kernels.random_binary_masks(13, 16, seed=4)  # 13 + ends crosses the 7-input chunks
    source = engine.FeatureMasks(masks, segments)
    plain = engine.run(model, x, baseline, source, progress=False)
    res = engine.run(model, x, baseline, source, progress=False, ends=ends)
    np.testing.assert_array_equal(res.scores, plain.scores)  # the mask chunks are unchanged
    np.testing.assert_allclose(res.scores, _reference_scores(model, x, baseline, masks, segments), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(res.input_scores, model.scores(x)[0], rtol=1e-5, atol=1e-6)
    if ends == 2:
        np.testing.assert_allclose(res.baseline_scores, model.scores(baseline)[0], rtol=1e-5, atol=1e-6)
        assert not np.allclose(res.baseline_scores, res.input_scores)
    else:
        assert res.baseline_scores is None
    with pytest.raises(onnxai.InputError, match="ends is 0, 1"):
        engine.run(model, x, baseline, source, progress=False, ends=3)
