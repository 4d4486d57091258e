"""A sample set's fidelity and diversity against a reference, each with a percentile bootstrap
interval over the set's samples (the reference stays fixed: the question is how far the number
would move with another draw of the same sampler).

Intervals are the bootstrap's percentile ranges centred on the estimate (`centred_interval`).
Precision, density and coverage (`knn.precision_density_coverage`) come from one exact search
of the fakes against the real k-NN balls (`knn.ball_pairs`); a replicate reweights those pairs by
each fake's multiplicity, so the bootstrap costs no further search. Recall needs the fakes' own
balls, which change with every resample; its interval is left out. The Vendi scores' replicates
are resampled sets (`diversity.vendi_bootstrap`).
"""

from __future__ import annotations

import numpy as np
import torch

from lowdensity.metrics.diversity import vendi_bootstrap, vendi_scores
from lowdensity.metrics.knn import ball_pairs, knn_radii, precision_density_coverage, recall


def pairs_bootstrap(
    point_index: np.ndarray,
    support_index: np.ndarray,
    num_points: int,
    num_support: int,
    k: int,
    replicates: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Precision, density and coverage of `replicates` resamplings (with replacement) of the points,
    from the pairs of `ball_pairs`: a point drawn w times counts w times in precision and density,
    and covers its balls if w > 0."""
    rng = np.random.default_rng(seed)
    balls_holding = np.bincount(point_index, minlength=num_points)
    out = {name: np.empty(replicates) for name in ("precision", "density", "coverage")}
    for b in range(replicates):
        weights = np.bincount(rng.integers(0, num_points, num_points), minlength=num_points)
        out["precision"][b] = (weights * (balls_holding > 0)).sum() / num_points
        out["density"][b] = (weights * balls_holding).sum() / (k * num_points)
        out["coverage"][b] = len(np.unique(support_index[weights[point_index] > 0])) / num_support
    return out


def vendi_name(q: float) -> str:
    """The column of order q: `vendi` for the paper's score (q = 1), `vendi_q<q>` otherwise."""
    return "vendi" if q == 1 else f"vendi_q{q:g}"


def fidelity_and_diversity(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    k: int,
    intervals: dict,
    real_radii: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    backend: str = "torch",
) -> list[dict]:
    """Tidy rows (metric, value, low, high) for a fake set against real features: improved
    precision and recall (Kynkäänniemi et al.), density and coverage (Naeem et al.), all with k-NN
    balls of k neighbours, and the Vendi scores of `intervals['vendi_orders']` of the fake set.

    `intervals`: {"bootstrap", "vendi_bootstrap", "level", "seed", "vendi_orders"} (the
    evaluation section's `intervals`): replicates for the ball metrics and for Vendi, the
    interval's coverage, the generator's seed. `backend`: the k-NN searches' (`knn.knn`)."""
    if real_radii is None:
        real_radii = knn_radii(real, k, device=device, backend=backend)
    pairs = ball_pairs(real, real_radii, fake, device=device)
    values = precision_density_coverage(*pairs, len(fake), len(real), k)
    replicates = pairs_bootstrap(*pairs, len(fake), len(real), k, intervals["bootstrap"], intervals["seed"])
    values["recall"] = recall(real, fake, k, backend=backend, device=device)
    orders = list(intervals["vendi_orders"])
    for q, value in vendi_scores(fake, orders).items():
        values[vendi_name(q)] = value
    for q, spread in vendi_bootstrap(fake, orders, intervals["vendi_bootstrap"], intervals["seed"]).items():
        replicates[vendi_name(q)] = spread
    rows = []
    for metric in ("precision", "recall", "density", "coverage", *map(vendi_name, orders)):
        low, high = (
            centred_interval(values[metric], replicates[metric], intervals["level"], _range(metric, len(fake)))
            if metric in replicates
            else (np.nan,) * 2
        )
        rows.append({"metric": metric, "value": values[metric], "low": low, "high": high})
    return rows


def _range(metric: str, num_samples: int) -> tuple[float, float]:
    """Where a metric's values lie: fractions in [0, 1], density in [0, ∞), Vendi in [1, n]."""
    if metric == "density":
        return 0.0, np.inf
    return (1.0, float(num_samples)) if metric.startswith("vendi") else (0.0, 1.0)


def centred_interval(
    value: float, replicates: np.ndarray, level: float, bounds: tuple[float, float] = (0.0, 1.0)
) -> tuple[float, float]:
    """The replicates' central `level` range, moved so that their median falls on `value`.
    Resampling with replacement repeats about a third of the samples; for means (precision,
    density) that changes nothing, but coverage and Vendi count *distinct* samples and fall by a
    bias the resampled sets have and the sampler's own draws do not (in the tests' set of 60 fakes:
    coverage 0.25, its replicates' median 0.17). Centring keeps the spread and drops that bias; the
    ends are then clipped to `bounds`, the metric's range."""
    low, median, high = np.quantile(replicates, [(1 - level) / 2, 0.5, (1 + level) / 2])
    return float(max(value + low - median, bounds[0])), float(min(value + high - median, bounds[1]))


def paired_gain(
    reference: np.ndarray, treated: np.ndarray, bootstrap: int, level: float, seed: int
) -> tuple[float, float, float]:
    """mean(treated) − mean(reference) of two per-sample values on the same seeds (e.g. "inside
    some real ball"), with a `level` interval from resampling the sample indices jointly, so that
    what the pairs share cancels (`centred_interval`, bounds ±1)."""
    if len(reference) != len(treated):
        raise ValueError(f"paired cells must have as many samples: {len(reference)} and {len(treated)}")
    difference = treated.astype(np.float64) - reference.astype(np.float64)
    rng = np.random.default_rng(seed)
    replicates = difference[rng.integers(0, len(difference), (bootstrap, len(difference)))].mean(1)
    value = float(difference.mean())
    low, high = centred_interval(value, replicates, level, (-1.0, 1.0))
    return value, low, high
