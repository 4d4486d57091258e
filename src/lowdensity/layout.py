"""The names the workflow and the stages share: a guidance cell's file stem, a sweep point's,
the split of a sample set into shards.

The Snakefile imports this module, so it imports neither torch nor pandas: every Snakemake
invocation (a dry run, each job of a cluster run) parses the workflow without them.

A weight (α, β, a sampler's strength) is written so that it reads back as exactly the same
float: the short form of `%g` (0.5, 2, 1e-05) where that is exact, else Python's shortest
round-trip form (0.1234567, which `%g` would round to 0.123457 and so sample at the wrong α).
"""

from __future__ import annotations

import re

import numpy as np

WEIGHT_PATTERN = r"[0-9.]+(?:e[-+][0-9]+)?"  # what weight_text writes for a finite weight ≥ 0


def weight_text(weight: float) -> str:
    """A non-negative weight as a file-name part that `float` reads back exactly."""
    weight = float(weight)
    short = f"{weight:g}"
    text = short if float(short) == weight else repr(weight)
    if not re.fullmatch(WEIGHT_PATTERN, text):
        raise ValueError(f"a weight in a file name must be a finite number ≥ 0, not {weight!r}")
    return text


def cell_name(loss: str, alpha: float, beta: float) -> str:
    """The file stem of an (α, β) cell: e.g. hardness_a0.5_b1."""
    return f"{loss}_a{weight_text(alpha)}_b{weight_text(beta)}"


def cell_weights(cell: str) -> tuple[str, float, float]:
    """(loss, α, β) of a cell's file stem (`cell_name`'s inverse)."""
    match = re.fullmatch(rf"(\w+?)_a({WEIGHT_PATTERN})_b({WEIGHT_PATTERN})", cell)
    if not match:
        raise ValueError(f"{cell!r} is not a cell name (LOSS_aALPHA_bBETA, e.g. hardness_a0.5_b1)")
    loss, alpha, beta = match.groups()
    return loss, float(alpha), float(beta)


def point_name(sampler: str, strength: float) -> str:
    """The file stem of a sweep point: e.g. self_guided_0.4 (baseline: baseline_0)."""
    return f"{sampler}_{weight_text(strength)}"


def parse_point(name: str) -> tuple[str, float]:
    sampler, strength = name.rsplit("_", 1)
    return sampler, float(strength)


def guided_num_samples(config: dict) -> int:
    """The main guided set's size: guidance.num_samples, or the baseline's (sampling.num_samples) when
    that is null or absent. Its sample i has the baseline sample i's seed and label whatever the size."""
    size = config.get("guidance", {}).get("num_samples")
    return config["sampling"]["num_samples"] if size is None else size


def shard_indices(num_samples: int, num_shards: int, shard: int) -> np.ndarray:
    """Shard k of S holds samples ⌊kN/S⌋ … ⌊(k+1)N/S⌋ − 1 of a set of N."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} out of range for {num_shards} shards")
    return np.arange(shard * num_samples // num_shards, (shard + 1) * num_samples // num_shards)


def shards_holding_first(num_samples: int, num_shards: int, first: int) -> list[int]:
    """The shards (of `shard_indices`' contiguous split) that hold samples 0 … first − 1."""
    if not 0 < first <= num_samples:
        raise ValueError(f"the first {first} samples of a set of {num_samples}")
    shards = [(s, shard_indices(num_samples, num_shards, s)) for s in range(num_shards)]
    return [s for s, indices in shards if len(indices) and indices[0] < first]
