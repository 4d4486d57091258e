"""The Vendi score against its definition on the n × n kernel, and closed forms."""

import numpy as np
import pytest
import scipy.linalg

from lowdensity.metrics.diversity import vendi_bootstrap, vendi_scores
from lowdensity.metrics.intervals import centred_interval


def brute_force_vendi(x, q):
    """Eq. 1 of Friedman & Dieng on the n × n cosine kernel, by scipy."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    lam = scipy.linalg.eigvalsh(unit @ unit.T / len(x))
    lam = lam[lam > 1e-15]
    if q == 1:
        return np.exp(-(lam * np.log(lam)).sum())
    return np.exp(np.log((lam**q).sum()) / (1 - q))


@pytest.mark.parametrize("n, d", [(300, 16), (40, 64)])  # through the d × d Gram matrix, and the n × n one
def test_vendi_equals_the_kernel_definition(n, d):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d)) + rng.normal(size=d)  # correlated rows: a score well below n
    ours = vendi_scores(x, [0.5, 1, 2])
    for q in (0.5, 1, 2):
        assert ours[q] == pytest.approx(brute_force_vendi(x, q), rel=1e-9)


def test_vendi_closed_forms():
    """n copies of one point count as 1; n orthogonal points as n, at every order; the score does
    not depend on the features' scale (a cosine kernel)."""
    assert vendi_scores(np.tile([[1.0, 2.0, 3.0]], (50, 1)), [0.5, 1, 2]) == pytest.approx({0.5: 1, 1: 1, 2: 1})
    assert vendi_scores(np.eye(20), [0.5, 1, 2]) == pytest.approx({0.5: 20, 1: 20, 2: 20})
    x = np.random.default_rng(0).normal(size=(100, 8))
    assert vendi_scores(3 * x, [1])[1] == pytest.approx(vendi_scores(x, [1])[1])
    with pytest.raises(ValueError, match="1 feature rows are zero"):
        vendi_scores(np.vstack([x, np.zeros(8)]), [1])


@pytest.mark.parametrize("n, d", [(120, 6), (60, 200)])  # the d × d and the n × n forms
def test_vendi_bootstrap_replicates_are_resampled_sets(n, d):
    """Each replicate is the score of a set drawn with replacement (the same draws, by hand), and
    the replicates spread around the set's own score. In the n × n form a replicate's kernel has
    a zero row per undrawn sample (float32 eigendecompositions of such kernels gave NaN)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, d)) + 1.0
    replicates = vendi_bootstrap(x, [1, 2], replicates=30, seed=11)
    draws = np.random.default_rng(11)
    for b in range(3):
        resampled = x[draws.integers(0, n, n)]
        assert replicates[1][b] == pytest.approx(brute_force_vendi(resampled, 1), rel=1e-4)
    own = vendi_scores(x, [1])[1]
    # repeated samples lower the effective number: the bias `centred_interval` removes
    assert np.median(replicates[1]) < own
    low, high = centred_interval(own, replicates[1], 0.9, (1.0, n))
    assert low < own < high
