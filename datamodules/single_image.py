"""Single-image datamodule: the image (and optional mask) of one edit, plus per-step noise.

Every per-image optimisation (Imagic's embedding and fine-tuning stages, null-text inversion) trains
on one image. The datamodule loads and preprocesses it exactly as the editors do
(`editing.io.images.load_image`) and yields, for optimisation step k on global rank r, a batch of
timesteps t ~ U{t_min..t_max} and noise eps ~ N(0, I) drawn from a generator seeded by
(seed, r, k): runs repeat bit for bit, DDP ranks see different noise, and an interrupted run resumes
with exactly the noise it would have drawn (the next step index is part of the checkpoint).
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


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """A CPU generator seeded by (seed, rank, step) through NumPy's SeedSequence mixing."""
    state = np.random.SeedSequence([seed, rank, step]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] % (2**63 - 1)))


def draw_noise(
    seed: int,
    rank: int,
    step: int,
    batch_size: int,
    noise_shape: tuple[int, ...],
    t_range: tuple[int, int],
) -> dict[str, Tensor]:
    """The (t, noise) batch of one step: t [B] int64 in [t_min, t_max], noise [B, *noise_shape]."""
    g = step_generator(seed, rank, step)
    t = torch.randint(t_range[0], t_range[1] + 1, (batch_size,), generator=g, dtype=torch.int64)
    noise = torch.randn((batch_size, *noise_shape), generator=g)
    return {"t": t, "noise": noise, "step": torch.tensor(step, dtype=torch.int64)}


class _StepNoise(IterableDataset):
    """Stream of per-step batches from the datamodule's next step (to `num_steps`, or forever)."""

    def __init__(self, dm: SingleImageDataModule) -> None:
        self.dm = dm

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        step = self.dm.next_step
        while self.dm.num_steps is None or step < self.dm.num_steps:
            yield draw_noise(
                self.dm.seed,
                self.dm.rank,
                step,
                self.dm.batch_size,
                self.dm.noise_shape,
                self.dm.t_range,
            )
            step += 1


class SingleImageDataModule(LightningDataModule):
    """One image (+ optional mask) and a deterministic stream of (t, noise) batches.

    Args:
        image: path of the image, or an already loaded `LoadedImage`.
        resolution: the model resolution (square crop side, pixels).
        noise_shape: (C, h, w) of the samples the model denoises (`DiffusionModel.latent_shape`).
        num_train_timesteps: T; t is drawn from [t_min, t_max] (default [0, T-1]).
        batch_size: (t, noise) pairs per optimisation step (the image is repeated).
        seed: base seed; the generator of step k on rank r is seeded by (seed, r, k).
        mask: optional mask path (1 = region to edit).
        num_steps: length of the stream (None: endless; the Trainer's max_steps ends the run).
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
