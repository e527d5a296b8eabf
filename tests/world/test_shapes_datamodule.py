"""The shapes datamodule: batches, determinism, rank and worker slicing."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import torch

from demo_world.oracle import judge, read_image
from demo_world.scene import parse_caption
from demo_world.shapes_datamodule import ShapesDataModule, ShapesStream


def _batches(module: ShapesDataModule, n: int) -> list[dict]:
    return list(itertools.islice(iter(module.train_dataloader()), n))


def test_batches_have_images_in_range_and_matching_captions():
    module = ShapesDataModule(resolution=32, batch_size=8, seed=0)
    module.setup("fit")
    (batch,) = _batches(module, 1)
    assert batch["image"].shape == (8, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert len(batch["caption"]) == 8
    for image, text in zip(batch["image"], batch["caption"]):
        assert all(judge(read_image(image), parse_caption(text)).values()), text


def test_same_seed_same_batches_other_seed_differs():
    a, b, c = (ShapesDataModule(batch_size=4, seed=s) for s in (0, 0, 1))
    for module in (a, b, c):
        module.setup("fit")
    first, second, other = (_batches(m, 2) for m in (a, b, c))
    for x, y in zip(first, second):
        assert torch.equal(x["image"], y["image"]) and x["caption"] == y["caption"]
    assert not torch.equal(first[0]["image"], other[0]["image"])


def test_ranks_draw_different_samples():
    module = ShapesDataModule(batch_size=4, seed=0)
    module.trainer = SimpleNamespace(global_rank=1)  # what setup() reads from a Trainer
    module.setup("fit")
    assert module.dataset.rank == 1
    rank0 = ShapesStream(seed=0, rank=0)
    (batch,) = _batches(module, 1)
    expected = [ShapesStream(seed=0, rank=1).sample(k) for k in range(4)]
    assert batch["caption"] == [e["caption"] for e in expected]
    assert not torch.equal(batch["image"][0], rank0.sample(0)["image"])


def test_workers_take_disjoint_slices():
    module = ShapesDataModule(batch_size=3, seed=5, num_workers=2)
    module.setup("fit")
    batches = _batches(module, 4)  # workers alternate batches: w0, w1, w0, w1
    stream = ShapesStream(seed=5, rank=0)
    for index, batch in enumerate(batches):
        worker, round_ = index % 2, index // 2
        ks = [worker + 2 * (3 * round_ + j) for j in range(3)]
        expected = torch.stack([stream.sample(k)["image"] for k in ks])
        assert torch.equal(batch["image"], expected), (index, ks)
