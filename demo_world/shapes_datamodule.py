"""Lightning datamodule streaming captioned images of the procedural shapes world.

The generation lives in `demo_world`; this file only seeds it and batches it. Sample k on
global rank r is drawn from a generator seeded by (seed, r, k), so runs repeat exactly and DDP
ranks see different data; with dataloader workers, worker w of W takes k = w, w + W, w + 2W, ...
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from demo_world.render import render
from demo_world.scene import caption, sample_scene


class ShapesStream(IterableDataset):
    """Infinite stream of {"image": float32 [3, H, W] in [-1, 1], "caption": str}.

    Args:
        resolution: image side in pixels.
        seed: stream seed.
        rank: global rank of the process reading the stream.
        two_object_prob: probability of a two-object scene.
    """

    def __init__(
        self, resolution: int = 32, seed: int = 0, rank: int = 0, two_object_prob: float = 0.3
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.seed = seed
        self.rank = rank
        self.two_object_prob = two_object_prob

    def sample(self, k: int) -> dict[str, torch.Tensor | str]:
        """Sample number k of this rank's stream (a pure function of seed, rank and k)."""
        rng = np.random.default_rng([self.seed, self.rank, k])
        scene = sample_scene(rng, two_object_prob=self.two_object_prob)
        pixels = render(scene, self.resolution, rng)
        image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1.0
        return {"image": image, "caption": caption(scene)}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor | str]]:
        worker = get_worker_info()
        k, step = (0, 1) if worker is None else (worker.id, worker.num_workers)
        while True:
            yield self.sample(k)
            k += step


class ShapesDataModule(pl.LightningDataModule):
    """Training data for the demo text-to-image model: an infinite `ShapesStream` per rank.

    Args:
        resolution: image side in pixels (32 for the base model, 64 for super-resolution).
        batch_size: images per batch and rank.
        seed: data seed (independent of the noise seed of the training objective).
        num_workers: dataloader worker processes (each takes a disjoint slice of the stream).
        two_object_prob: probability of a two-object scene.
    """

    def __init__(
        self,
        resolution: int = 32,
        batch_size: int = 32,
        seed: int = 0,
        num_workers: int = 0,
        two_object_prob: float = 0.3,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.two_object_prob = two_object_prob
        self.dataset: ShapesStream | None = None

    def setup(self, stage: str | None = None) -> None:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        self.dataset = ShapesStream(self.resolution, self.seed, rank, self.two_object_prob)

    def train_dataloader(self) -> DataLoader:
        if self.dataset is None:
            self.setup("fit")
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


class ShapesPairStream(ShapesStream):
    """Stream of {"image": [3, R, R], "low_res": [3, r, r] (both in [-1, 1]), "caption"}."""

    def __init__(self, resolution=64, low_resolution=32, seed=0, rank=0, two_object_prob=0.3):
        super().__init__(resolution, seed, rank, two_object_prob)
        self.low_resolution = low_resolution

    def sample(self, k: int) -> dict[str, Tensor | str]:
        rng = np.random.default_rng([self.seed, self.rank, k])
        scene = sample_scene(rng, two_object_prob=self.two_object_prob)
        state = rng.bit_generator.state
        high = render(scene, self.resolution, rng)
        rng.bit_generator.state = state  # the low-res render makes the same draws
        low = render(scene, self.low_resolution, rng)

        def tensor(pixels: np.ndarray) -> Tensor:
            return torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1.0

        return {"image": tensor(high), "low_res": tensor(low), "caption": caption(scene)}


class ShapesPairDataModule(ShapesDataModule):
    """`ShapesDataModule` yielding (64 px, 32 px) renders of each scene (`ShapesPairStream`)."""

    def __init__(self, resolution=64, low_resolution=32, batch_size=16, seed=0, num_workers=0):
        super().__init__(resolution, batch_size, seed, num_workers)
        self.low_resolution = low_resolution

    def setup(self, stage: str | None = None) -> None:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        self.dataset = ShapesPairStream(
            self.resolution, self.low_resolution, self.seed, rank, self.two_object_prob
        )
