"""Table 1: the cost of collecting N images from a hardness range by rejection sampling from
the baseline sampler versus by guided sampling.

For a sampler with measured seconds per image s and acceptance rate r (the fraction of its
samples whose hardness falls in the range), collecting N images costs N / r · s seconds;
the speed-up is the baseline's cost over the guided sampler's. Ranges are cut at quantiles
of the real held-out images' hardness, so they carry across datasets and scales.
Confidence intervals come from a percentile bootstrap over samples (each sampler's set
resampled with replacement, seconds per image held fixed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def acceptance_rate(hardness: np.ndarray, low: float, high: float) -> float:
    hardness = np.asarray(hardness)
    return float(((hardness >= low) & (hardness < high)).mean()) if len(hardness) else float("nan")


def collection_cost(num_images: int, rate: float, seconds_per_image: float) -> float:
    """Seconds to collect `num_images` accepted images: N / r · s (infinite when r = 0)."""
    return float("inf") if rate == 0 else num_images / rate * seconds_per_image


def cost_table(
    real_hardness: np.ndarray,
    samplers: dict[str, tuple[np.ndarray, float]],
    quantiles: list[float],
    num_images: int,
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (range, sampler): the range's bounds, acceptance rate, cost in seconds and
    days for `num_images` images, speed-up over the baseline, each with a bootstrap interval.

    `samplers` maps a name to (hardness of its samples, seconds per image); it must hold
    'baseline'. Consecutive `quantiles` of the real hardness bound the ranges."""
    edges = np.quantile(real_hardness, quantiles)
    edges[-1] = np.inf if quantiles[-1] >= 1 else edges[-1]
    rng = np.random.default_rng(seed)
    base_h, base_s = samplers["baseline"]
    rows = []
    for i in range(len(edges) - 1):
        low, high = float(edges[i]), float(edges[i + 1])
        base_rate = acceptance_rate(base_h, low, high)
        base_cost = collection_cost(num_images, base_rate, base_s)
        base_draws = [
            acceptance_rate(base_h[rng.integers(0, len(base_h), len(base_h))], low, high) for _ in range(num_resamples)
        ]
        for name, (hardness, seconds) in samplers.items():
            rate = acceptance_rate(hardness, low, high)
            cost = collection_cost(num_images, rate, seconds)
            draws = (
                base_draws
                if name == "baseline"
                else [
                    acceptance_rate(hardness[rng.integers(0, len(hardness), len(hardness))], low, high)
                    for _ in range(num_resamples)
                ]
            )
            costs = np.array([collection_cost(num_images, r, seconds) for r in draws])
            speedups = np.array(
                [
                    collection_cost(num_images, b, base_s) / c if np.isfinite(c) else np.nan
                    for b, c in zip(base_draws, costs)
                ]
            )
            q = ((1 - level) / 2, 1 - (1 - level) / 2)
            rows.append(
                {
                    "range": i,
                    "quantile_low": quantiles[i],
                    "quantile_high": quantiles[i + 1],
                    "hardness_low": low,
                    "hardness_high": high,
                    "sampler": name,
                    "seconds_per_image": seconds,
                    "n": len(hardness),
                    "acceptance_rate": rate,
                    "acceptance_low": float(np.quantile(draws, q[0], method="inverted_cdf")),
                    "acceptance_high": float(np.quantile(draws, q[1], method="inverted_cdf")),
                    "cost_seconds": cost,
                    "cost_days": cost / 86400,
                    "cost_low": float(np.quantile(costs, q[0], method="inverted_cdf")),
                    "cost_high": float(np.quantile(costs, q[1], method="inverted_cdf")),
                    "speedup": base_cost / cost if np.isfinite(cost) else float("nan"),
                    "speedup_low": float(np.nanquantile(speedups, q[0], method="inverted_cdf"))
                    if np.isfinite(speedups).any()
                    else float("nan"),
                    "speedup_high": float(np.nanquantile(speedups, q[1], method="inverted_cdf"))
                    if np.isfinite(speedups).any()
                    else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def render_table(table: pd.DataFrame, num_images: int) -> str:
    """Markdown in the paper's layout: one row per sampler, one column per hardness range, each
    cell the days to collect `num_images` images (speed-up over the baseline)."""
    ranges = table.drop_duplicates("range").sort_values("range")
    header = (
        "| sampler | "
        + " | ".join(
            f"{r.hardness_low:.4g} – {r.hardness_high:.4g} (q {r.quantile_low:g}–{r.quantile_high:g})"
            for r in ranges.itertuples()
        )
        + " |"
    )
    lines = [
        f"Days to collect {num_images} images per hardness range on the device that sampled them "
        f"(acceptance rate; speed-up over the baseline; 95% bootstrap interval of the speed-up).",
        "",
        header,
        "|" + "---|" * (len(ranges) + 1),
    ]
    for name, rows in table.groupby("sampler", sort=False):
        cells = []
        for r in rows.sort_values("range").itertuples():
            speed = "" if r.sampler == "baseline" else f"; ×{r.speedup:.2f} [{r.speedup_low:.2f}, {r.speedup_high:.2f}]"
            cells.append(f"{r.cost_days:.3g} ({r.acceptance_rate:.3f}{speed})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
