"""The limits benchmark's arithmetic on games whose Walsh terms are known (no model needed)."""

import numpy as np
import pytest

from tools.bench.bench_limits import _odd_even, _residual, _variance_ratio


def _paired(n, k, seed):
    half = np.random.default_rng(seed).integers(0, 2, (n // 2, k), dtype=np.uint8)
    Z = np.empty((n, k), np.uint8)
    Z[0::2], Z[1::2] = half, 1 - half
    return Z


def _game(Z, even, odd):
    x = 2.0 * Z - 1.0
    return 0.5 * x[:, 0] - 0.3 * x[:, 1] + even * x[:, 2] * x[:, 3] + odd * x[:, 4] * x[:, 5] * x[:, 6]


def test_odd_even_split_matches_the_walsh_terms():
    Z = _paired(40000, 10, 0)
    w = np.ones(len(Z))
    odd, even = _odd_even(_residual(Z, _game(Z, even=0.3, odd=0.1), w))
    # the linear fit leaves x2 x3 (energy 0.09, even under complement) and x4 x5 x6 (0.01, odd)
    assert odd == pytest.approx(0.01, rel=0.05)
    assert even == pytest.approx(0.09, rel=0.05)


def test_pairs_pay_for_the_odd_part_only():
    Z = _paired(24000, 10, 1)
    w = np.ones(len(Z))
    area = np.ones(10)
    # mostly even residual: pairs cancel it, bound (0.09 + 0.01) / (2 * 0.01) = 5
    gain, reps = _variance_ratio(Z, _game(Z, even=0.3, odd=0.1), w, area, 200)
    assert reps == 60 and 3.5 < gain < 7
    # only odd residual: a pair costs two samples and cancels nothing, ratio 1 / 2
    gain, _ = _variance_ratio(Z, _game(Z, even=0.0, odd=0.3), w, area, 200)
    assert 0.35 < gain < 0.7
