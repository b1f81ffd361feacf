import math

import numpy as np
import pytest
import torch

from tritonnx.bench.stats import Timing, geomean, max_rel_err, quantile


@pytest.mark.parametrize("n", [1, 2, 7, 50], ids=lambda n: f"n{n}")
def test_quantile_matches_numpy(n):
    xs = np.random.default_rng(n).uniform(0.1, 5.0, n)
    for q in (0.0, 0.2, 0.5, 0.8, 1.0):
        assert quantile(list(xs), q) == pytest.approx(np.quantile(xs, q))


def test_quantile_rejects_bad_input():
    with pytest.raises(ValueError):
        quantile([], 0.5)
    with pytest.raises(ValueError):
        quantile([1.0], 1.5)


def test_timing_from_samples_order_free():
    t = Timing.from_samples([5.0, 1.0, 3.0, 2.0, 4.0], "cpu-wall")
    assert (t.median_ms, t.method) == (3.0, "cpu-wall")
    assert t.p20_ms == pytest.approx(1.8) and t.p80_ms == pytest.approx(4.2)
    assert t.samples_ms == (5.0, 1.0, 3.0, 2.0, 4.0)


def test_geomean():
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert geomean([None, 0.0, float("nan"), 3.0]) == pytest.approx(3.0)
    assert geomean([]) is None


def test_max_rel_err_scaled_by_reference_magnitude():
    ref = torch.tensor([1.0, -4.0, 0.0])
    out = torch.tensor([1.5, -4.0, 0.0], dtype=torch.float16)
    assert max_rel_err(out, ref) == pytest.approx(0.5 / 4.0)
    assert max_rel_err(np.zeros(3), np.zeros(3)) == 0.0
    assert max_rel_err(np.ones(3), np.zeros(3)) == math.inf
    assert max_rel_err(torch.tensor([float("nan")]), torch.tensor([1.0])) == math.inf


def test_max_rel_err_shape_mismatch():
    with pytest.raises(ValueError, match="shape mismatch"):
        max_rel_err(np.zeros((2, 3)), np.zeros((3, 2)))
