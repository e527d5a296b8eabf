"""Single-image datamodule: the image (and optional mask) of one edit, plus per-step noise.

Every per-image optimisation (Imagic's embedding and fine-tuning stages, null-text inversion) trains
on one image. The datamodule loads and preprocesses it exactly as the editors do
(`editing.io.images.load_image`) and yields, for optimisation step k on global rank r, a batch of
timesteps t ~ U{t_min..t_max} and noise eps ~ N(0, I). The noise of steps k = bS .. bS + S - 1
(block b = k // S, S = `NOISE_BLOCK_STEPS`) is drawn at once from one generator seeded by
(seed, r, b): step k's batch depends on (seed, r, k) only, so runs repeat bit for bit, DDP ranks
see different noise, and an interrupted run resumes with exactly the noise it would have drawn,
at any step (the next step index is part of the checkpoint; a resumed stream redraws the block it
starts in). One seeding per block instead of per step: a NumPy SeedSequence and a fresh generator
cost about 0.3 ms, a noticeable share of a tiny model's step.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import IterableDataset

from editing.io.images import LoadedImage, load_image, load_mask

NOISE_BLOCK_STEPS = 32  # steps whose noise one generator draws (SD 1.5, batch 1: 2 MB a block)


def block_generator(seed: int, rank: int, block: int) -> torch.Generator:
    """A CPU generator seeded by (seed, rank, block) through NumPy's SeedSequence mixing."""
    state = np.random.SeedSequence([seed, rank, block]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] % (2**63 - 1)))


def draw_noise_block(
    seed: int,
    rank: int,
    block: int,
    batch_size: int,
    noise_shape: tuple[int, ...],
    t_range: tuple[int, int],
    block_steps: int = NOISE_BLOCK_STEPS,
) -> tuple[Tensor, Tensor]:
    """(t [S, B] int64 in [t_min, t_max], noise [S, B, *noise_shape]) of the S = `block_steps`
    steps block * S .. block * S + S - 1, from `block_generator(seed, rank, block)`."""
    g = block_generator(seed, rank, block)
    t = torch.randint(
        t_range[0], t_range[1] + 1, (block_steps, batch_size), generator=g, dtype=torch.int64
    )
    noise = torch.randn((block_steps, batch_size, *noise_shape), generator=g)
    return t, noise


class NoiseStream:
    """The (t, noise) batches of steps k, k + 1, ... (`batch(k)`), one block drawn at a time.

    Args:
        seed, rank: what the blocks are seeded by (with the block index).
        batch_size, noise_shape, t_range: as `draw_noise_block`.
        block_steps: S, steps per block; part of the noise's definition (another S, other noise).
    """

    def __init__(
        self,
        seed: int,
        rank: int,
        batch_size: int,
        noise_shape: tuple[int, ...],
        t_range: tuple[int, int],
        block_steps: int = NOISE_BLOCK_STEPS,
    ) -> None:
        if block_steps < 1:
            raise ValueError(f"block_steps must be at least 1, got {block_steps}")
        self.seed, self.rank = int(seed), int(rank)
        self.batch_size, self.noise_shape = int(batch_size), tuple(noise_shape)
        self.t_range, self.block_steps = t_range, int(block_steps)
        self._block: tuple[int, Tensor, Tensor] | None = None

    def batch(self, step: int) -> dict[str, Tensor]:
        """{"t": [B] int64, "noise": [B, *noise_shape], "step": scalar int64} of step `step`."""
        block, i = divmod(step, self.block_steps)
        if self._block is None or self._block[0] != block:
            t, noise = draw_noise_block(
                self.seed,
                self.rank,
                block,
                self.batch_size,
                self.noise_shape,
                self.t_range,
                self.block_steps,
            )
            self._block = (block, t, noise)
        _, t, noise = self._block
        return {"t": t[i], "noise": noise[i], "step": torch.tensor(step, dtype=torch.int64)}


def draw_noise(
    seed: int,
    rank: int,
    step: int,
    batch_size: int,
    noise_shape: tuple[int, ...],
    t_range: tuple[int, int],
    block_steps: int = NOISE_BLOCK_STEPS,
) -> dict[str, Tensor]:
    """The (t, noise) batch of one step, as the datamodule's stream yields it: t [B] int64 in
    [t_min, t_max], noise [B, *noise_shape]."""
    stream = NoiseStream(seed, rank, batch_size, noise_shape, t_range, block_steps)
    return stream.batch(step)


class _StepNoise(IterableDataset):
    """Stream of per-step batches from the datamodule's next step (to `num_steps`, or forever)."""

    def __init__(self, dm: SingleImageDataModule) -> None:
        self.dm = dm

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        dm = self.dm
        stream = NoiseStream(
            dm.seed, dm.rank, dm.batch_size, dm.noise_shape, dm.t_range, dm.noise_block_steps
        )
        step = dm.next_step
        while dm.num_steps is None or step < dm.num_steps:
            yield stream.batch(step)
            step += 1


class SingleImageDataModule(LightningDataModule):
    """One image (+ optional mask) and a deterministic stream of (t, noise) batches.

    Args:
        image: path of the image, or an already loaded `LoadedImage`.
        resolution: the model resolution (square crop side, pixels).
        noise_shape: (C, h, w) of the samples the model denoises (`DiffusionModel.latent_shape`).
        num_train_timesteps: T; t is drawn from [t_min, t_max] (default [0, T-1]).
        batch_size: (t, noise) pairs per optimisation step (the image is repeated).
        seed: base seed; step k's noise on rank r depends on (seed, r, k) only.
        mask: optional mask path (1 = region to edit).
        num_steps: length of the stream (None: endless; the Trainer's max_steps ends the run).
        noise_block_steps: steps whose noise one generator draws (`NoiseStream`).
    """

    def __init__(
        self,
        image: str | Path | LoadedImage,
        resolution: int,
        noise_shape: tuple[int, ...],
        num_train_timesteps: int = 1000,
        batch_size: int = 1,
        seed: int = 0,
        mask: str | Path | None = None,
        t_min: int = 0,
        t_max: int | None = None,
        num_steps: int | None = None,
        noise_block_steps: int = NOISE_BLOCK_STEPS,
    ) -> None:
        super().__init__()
        self.image = image if isinstance(image, LoadedImage) else load_image(image, resolution)
        self.mask = load_mask(mask, self.image, resolution) if mask else None
        self.noise_shape = tuple(int(s) for s in noise_shape)
        self.t_range = (int(t_min), int(num_train_timesteps - 1 if t_max is None else t_max))
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = 0
        self.num_steps = num_steps
        self.noise_block_steps = int(noise_block_steps)
        self.next_step = 0

    def setup(self, stage: str | None = None) -> None:
        self.rank = self.trainer.global_rank if self.trainer is not None else 0

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(_StepNoise(self), batch_size=None, num_workers=0)

    def on_after_batch_transfer(
        self, batch: dict[str, Tensor], dataloader_idx: int
    ) -> dict[str, Tensor]:
        # Called when the batch is about to be trained on (not when prefetched): the step it
        # carries is consumed, so a checkpoint taken after it resumes at the next one.
        self.next_step = int(batch["step"]) + 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"next_step": self.next_step}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.next_step = int(state_dict["next_step"])
