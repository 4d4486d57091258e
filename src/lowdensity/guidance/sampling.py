"""Sampling sharded by seed, gathering shards, and the samples grid.

Sample i of a set (i = 0 … N−1) has seed `sampling.seed + i` and label i mod C, whatever
the number of shards; shard k of S holds samples ⌊kN/S⌋ … ⌊(k+1)N/S⌋ − 1. A shard file
stores uint8 images, labels, seeds and sample indices, and the wall-clock seconds per
image spent in the sampler on the device that ran it (Table 1 reads them).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from lowdensity.core.diffusion import CondFn, GaussianDiffusion
from lowdensity.core.noise import NoiseSource
from lowdensity.data import to_uint8


def balanced_labels(indices: np.ndarray, num_classes: int) -> np.ndarray:
    """Sample i gets class i mod C, so every class is equally represented."""
    return (np.asarray(indices) % num_classes).astype(np.int64)


def generate(
    model,
    diffusion: GaussianDiffusion,
    shape: Sequence[int],
    labels: np.ndarray,
    seeds: np.ndarray,
    batch_size: int,
    *,
    method: str = "ddpm",
    eta: float = 0.0,
    cond_fn_for: Optional[Callable[[torch.Tensor, np.ndarray, GaussianDiffusion], CondFn]] = None,
    progress: bool = False,
    init_scale: float = 1.0,
    skip: int = 0,
    start_states: Optional[np.ndarray] = None,
    keep_before: Optional[int] = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """uint8 samples (N, *shape), one per (label, seed).

    `cond_fn_for(labels, seeds, diffusion)` returns the guidance hook for a batch (None:
    baseline); `init_scale` and `skip` start the chain from x = init_scale·ε after skipping
    the first `skip` steps (Boost-and-Skip; 1 and 0: the standard start), or, with
    `start_states` (N, *shape), from those states (a continued chain). With `keep_before` = i,
    also returns each chain's float32 state before step i: (samples, states).
    """
    device = next(model.parameters()).device
    out = [np.zeros((0, *shape), dtype=np.uint8)]
    kept = [np.zeros((0, *shape), dtype=np.float32)]
    for start in range(0, len(labels), batch_size):
        y = torch.from_numpy(labels[start : start + batch_size]).to(device)
        batch_seeds = seeds[start : start + batch_size]
        noise = NoiseSource(batch_seeds)
        kwargs = {"y": y} if model.num_classes else {}
        cond_fn = cond_fn_for(y, batch_seeds, diffusion) if cond_fn_for else None
        x_init = None if start_states is None else torch.from_numpy(start_states[start : start + batch_size])

        def keep(i: int, x: torch.Tensor) -> None:
            if i == keep_before:
                kept.append(x.detach().float().cpu().numpy())

        x = diffusion.sample_loop(
            model,
            (len(y), *shape),
            noise,
            method=method,
            eta=eta,
            model_kwargs=kwargs,
            cond_fn=cond_fn,
            device=device,
            progress=progress,
            init_scale=init_scale,
            skip=skip,
            x_init=x_init,
            on_step=None if keep_before is None else keep,
        )
        out.append(to_uint8(x))
    images = np.concatenate(out)
    if keep_before is None:
        return images
    states = np.concatenate(kept)
    if len(states) != len(images):
        raise ValueError(
            f"step {keep_before} is not one the chain runs (it has {diffusion.num_timesteps} steps, skips {skip})"
        )
    return images, states
