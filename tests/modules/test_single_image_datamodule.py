"""Single-image datamodule: deterministic per-step noise, different per rank, resumable."""

from __future__ import annotations

import torch

from datamodules.single_image import SingleImageDataModule, draw_noise


def _dm(image_path, **kw):
    return SingleImageDataModule(
        image=image_path, resolution=32, noise_shape=(4, 8, 8), batch_size=2, **kw
    )


def test_noise_depends_on_seed_rank_and_step_only():
    a = draw_noise(0, 0, 5, 2, (4, 8, 8), (0, 999))
    b = draw_noise(0, 0, 5, 2, (4, 8, 8), (0, 999))
    assert torch.equal(a["t"], b["t"]) and torch.equal(a["noise"], b["noise"])
    for other in (
        draw_noise(1, 0, 5, 2, (4, 8, 8), (0, 999)),
        draw_noise(0, 1, 5, 2, (4, 8, 8), (0, 999)),
        draw_noise(0, 0, 6, 2, (4, 8, 8), (0, 999)),
    ):
        assert not torch.equal(a["noise"], other["noise"])
    assert a["t"].dtype == torch.int64 and a["t"].min() >= 0 and a["t"].max() <= 999


def test_stream_resumes_at_the_saved_step(image_path):
    dm = _dm(image_path, seed=3, num_steps=6)
    batches = list(dm.train_dataloader())
    assert [int(b["step"]) for b in batches] == list(range(6))
    dm.on_after_batch_transfer(batches[2], 0)  # step 2 consumed
    state = dm.state_dict()
    resumed = _dm(image_path, seed=3, num_steps=6)
    resumed.load_state_dict(state)
    rest = list(resumed.train_dataloader())
    assert [int(b["step"]) for b in rest] == [3, 4, 5]
    assert torch.equal(rest[0]["noise"], batches[3]["noise"])


def test_rank_changes_the_stream(image_path):
    r0, r1 = _dm(image_path, num_steps=2), _dm(image_path, num_steps=2)
    r1.rank = 1
    a, b = next(iter(r0.train_dataloader())), next(iter(r1.train_dataloader()))
    assert not torch.equal(a["noise"], b["noise"])
    assert r0.image.pixels.shape == (1, 3, 32, 32)
