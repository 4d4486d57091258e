"""Per-sample random streams, so that a sample depends only on its own seed.

Each sample i has its own `torch.Generator` seeded with seeds[i]; every draw (x_T, then
one z per step) takes the next values of each sample's stream on the CPU. Hence the
same seed gives the same latents whatever the batch or shard layout and whichever
device runs the network, and the guided sampler can start from exactly the latents of
the baseline sample with the same seed (the pairs of figures 3, 5, 6 and 10).
"""

from __future__ import annotations

from typing import Sequence

import torch


class NoiseSource:
    def __init__(self, seeds: Sequence[int]):
        self.seeds = [int(s) for s in seeds]
        self.generators = []
        for seed in self.seeds:
            g = torch.Generator(device="cpu")
            g.manual_seed(seed)
            self.generators.append(g)

    def __len__(self) -> int:
        return len(self.seeds)

    def draw(self, sample_shape: Sequence[int]) -> torch.Tensor:
        """A batch of standard normal draws, one slice per sample from its own stream."""
        return torch.stack([torch.randn(*sample_shape, generator=g) for g in self.generators])
