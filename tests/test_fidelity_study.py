"""The fidelity study's arithmetic: the paired gain of β, on the ball test it reads."""

import numpy as np
import pytest

from lowdensity.metrics.intervals import paired_gain
from lowdensity.metrics.knn import inside_balls, knn_radii


def test_the_per_sample_ball_test_is_the_brute_force_one():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(300, 6)), rng.normal(scale=1.3, size=(120, 6))
    radii = knn_radii(real, 3)
    distances = np.sqrt(((fake[:, None] - real[None]) ** 2).sum(-1))
    expected = (distances <= radii[None]).any(1)
    np.testing.assert_array_equal(inside_balls(real, radii, fake), expected)
    assert 0 < expected.mean() < 1


def test_paired_gain_resamples_the_pairs_together():
    rng = np.random.default_rng(1)
    reference = rng.random(200) < 0.4
    treated = reference | (rng.random(200) < 0.3)  # β only adds hits: every replicate's gain is ≥ 0
    value, low, high = paired_gain(reference, treated, 500, 0.95, seed=7)
    assert value == pytest.approx(treated.mean() - reference.mean())
    draws = np.random.default_rng(7).integers(0, 200, (500, 200))
    replicates = np.array([treated[i].mean() - reference[i].mean() for i in draws])
    q_low, q_mid, q_high = np.quantile(replicates, [0.025, 0.5, 0.975])
    assert (low, high) == pytest.approx((value + q_low - q_mid, value + q_high - q_mid))
    assert low > 0  # paired: the common hits cancel, so a one-sided change separates from zero
    assert paired_gain(reference, reference, 100, 0.95, seed=0) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="as many samples"):
        paired_gain(reference, treated[:-1], 10, 0.95, seed=0)
