"""The project's one seeding rule for sampled noise.

Sample (or candidate) k of a run with seed s is drawn from its own CPU `torch.Generator` seeded
with s + k (callers pass the seeds: `[seed + k for k in range(K)]`), every draw it needs (its x_T,
then per-step noise, then augmentation parameters) comes from that generator in a fixed order, and
each draw is made on the CPU and then moved to the device. So a sample's pixels depend on its seed
only: not on the batch it runs in, nor on the device (CPU draws are identical everywhere).
"""

from __future__ import annotations

import torch
from torch import Tensor


def seeded_generators(seeds: list[int]) -> list[torch.Generator]:
    """One CPU generator per sample, seeded with its seed."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def randn_per_sample(
    generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device | str
) -> Tensor:
    """[B, *shape] standard normal on `device`, row b drawn on the CPU from generators[b]."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)


def rand_per_sample(
    generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device | str
) -> list[Tensor]:
    """U[0, 1) draws of `shape` on `device`, one tensor per sample, drawn on the CPU."""
    return [torch.rand(shape, generator=g).to(device) for g in generators]


def initial_noise(seeds: list[int], shape: tuple[int, ...], device: torch.device | str) -> Tensor:
    """x_T [len(seeds), *shape]: the first draw of each sample's generator."""
    return randn_per_sample(seeded_generators(seeds), shape, device)
