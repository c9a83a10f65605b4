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
