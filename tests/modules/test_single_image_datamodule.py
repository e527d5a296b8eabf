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


def test_noise_of_a_step_does_not_depend_on_where_the_stream_starts(image_path):
    # blocks of 3 steps: a stream started mid-block or at a block boundary yields exactly the
    # batches of the uninterrupted stream, and draw_noise gives the same batch for one step
    whole = list(_dm(image_path, seed=4, num_steps=8, noise_block_steps=3).train_dataloader())
    for start in (1, 3, 4, 7):
        resumed = _dm(image_path, seed=4, num_steps=8, noise_block_steps=3)
        resumed.load_state_dict({"next_step": start})
        rest = list(resumed.train_dataloader())
        assert [int(b["step"]) for b in rest] == list(range(start, 8))
        for a, b in zip(whole[start:], rest):
            assert torch.equal(a["t"], b["t"]) and torch.equal(a["noise"], b["noise"])
    single = draw_noise(4, 0, 5, 2, (4, 8, 8), (0, 999), block_steps=3)
    assert torch.equal(single["noise"], whole[5]["noise"]) and torch.equal(
        single["t"], whole[5]["t"]
    )
    assert whole[5]["noise"].shape == (2, 4, 8, 8) and whole[5]["t"].shape == (2,)
    # every step of a block gets its own draws
    assert not any(torch.equal(whole[k]["noise"], whole[k + 1]["noise"]) for k in range(7))


def test_noise_is_drawn_once_per_block(image_path, monkeypatch):
    import datamodules.single_image as single_image

    blocks = []
    draw = single_image.draw_noise_block
    monkeypatch.setattr(
        single_image,
        "draw_noise_block",
        lambda seed, rank, block, *args: blocks.append(block) or draw(seed, rank, block, *args),
    )
    dm = _dm(image_path, num_steps=10, noise_block_steps=4)
    dm.load_state_dict({"next_step": 2})
    assert len(list(dm.train_dataloader())) == 8
    assert blocks == [0, 1, 2]  # steps 2-3, 4-7, 8-9
