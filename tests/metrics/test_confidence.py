"""Average Drop / Increase in Confidence (and the top-50% variants) against the formula on region_net."""

import numpy as np
import pytest

from onnxai import metrics
import onnx_models
from region_case import REGION, SIZE, _good_map, _p1


def test_average_drop_and_increase_equal_the_formula(region_model):
    model, mask = region_model
    pics = [onnx_models.region_picture(SIZE, REGION, seed=s) for s in range(3)]
    rng = np.random.default_rng(7)
    maps = [_good_map(mask), 1.0 - mask + 0.2 * rng.random(mask.shape), rng.standard_normal(mask.shape)]
    targets = [1, 1, 0]  # class 0 gains when the bright region is darkened: an increase in confidence
    got = [metrics.confidence(model, p, m, target=t) for p, m, t in zip(pics, maps, targets)]
    drops, incs, drops50, incs50 = [], [], [], []
    for p, m, t in zip(pics, maps, targets):
        m01 = (m - m.min()) / (m.max() - m.min())
        top = np.zeros(m.size, bool)
        top[np.argsort(-m.ravel(), kind="stable")[: m.size // 2]] = True
        m50 = np.where(top.reshape(m.shape), m01, 0.0)
        prob = (lambda q: q) if t == 1 else (lambda q: 1.0 - q)
        y = prob(_p1(p.astype(np.float64), mask))
        o = prob(_p1(p * m01[..., None], mask))
        o50 = prob(_p1(p * m50[..., None], mask))
        drops.append(100 * max(0.0, y - o) / y)
        incs.append(100.0 * (y < o))
        drops50.append(100 * max(0.0, y - o50) / y)
        incs50.append(100.0 * (y < o50))
    for c, d, i, d5, i5 in zip(got, drops, incs, drops50, incs50):
        assert c.drop == pytest.approx(d, abs=1e-3)
        assert c.increase == i and c.increase50 == i5
        assert c.drop50 == pytest.approx(d5, abs=1e-3)
    assert metrics.average_drop(got) == pytest.approx(np.mean(drops), abs=1e-3)
    assert metrics.increase_in_confidence(got) == pytest.approx(np.mean(incs))
    assert 0 < metrics.increase_in_confidence(got) < 100  # the case exercises both outcomes
    assert got[0].drop < got[1].drop  # the informative map keeps the confidence
