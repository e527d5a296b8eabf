"""The demo SR stage: paired shapes-world data, a short pretraining run, demo_cascade loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import compose_config

from demo_world.render import render
from demo_world.scene import caption, sample_scene
from demo_world.shapes_datamodule import ShapesPairStream
from editing.errors import UserInputError


def test_pairs_are_two_renders_of_one_scene():
    pair = ShapesPairStream(64, 32, seed=3).sample(5)
    rng = np.random.default_rng([3, 0, 5])
    scene = sample_scene(rng, two_object_prob=0.3)
    state = rng.bit_generator.state
    render(scene, 64, rng)
    rng.bit_generator.state = state
    low = torch.from_numpy(render(scene, 32, rng)).permute(2, 0, 1).float() / 127.5 - 1
    assert pair["image"].shape == (3, 64, 64) and torch.equal(pair["low_res"], low)
    assert pair["caption"] == caption(scene)


def test_pretrain_demo_sr_exports_a_loadable_cascade(tmp_path):
    from demo_world.demo_model import build_demo_model
    from demo_world.demo_sr import load_demo_cascade
    from editing.models.loading import save_model
    from editing_app.commands.train import train

    cfg = compose_config(
        "train",
        [
            "base_model=demo_init",
            "stage=pretrain_demo_sr",
            f"output_dir={tmp_path / 'run'}",
            "trainer=cpu",
            "callbacks=none",
            "logger=none",
            "trainer.max_steps=2",
            "stage.batch_size=2",
            "stage.datamodule.num_workers=0",
            "stage.arch.block_out_channels=[8,16]",
            "stage.arch.attention_levels=1",
        ],
    )
    (path,) = train(cfg)
    base = save_model(build_demo_model(), tmp_path / "base")
    with pytest.raises(
        UserInputError, match="no demo super-resolution model .* stage=pretrain_demo_sr"
    ):
        load_demo_cascade(base, tmp_path / "missing")
    model = load_demo_cascade(base, path)
    assert model.resolution == 32 and model.sr.resolution == 64 and model.sr.noise_level == 100
    assert model.sr.name == "demo_sr" and not model.sr.learned_variance


def test_sr_quality_scores_the_sr_stage_beside_bilinear_and_bicubic():
    from demo_world.demo_model import build_demo_model
    from demo_world.demo_sr import build_demo_sr
    from demo_world.sr_quality import ATTRIBUTES, HELD_OUT_SEED, MSE_GROUPS, evaluate
    from editing.models.cascade import upsample, upscale_output

    base = build_demo_model(block_out_channels=(8, 16), text_width=32, text_layers=1)
    sr = build_demo_sr(base, block_out_channels=(8, 16), attention_levels=1)
    results = evaluate(base, sr, n=3, num_inference_steps=2, batch_size=2)

    pairs = [ShapesPairStream(64, 32, seed=HELD_OUT_SEED).sample(k) for k in range(3)]
    high = torch.stack([p["image"] for p in pairs])
    low = torch.stack([p["low_res"] for p in pairs])
    noisy = torch.tensor(["noisy background" in p["caption"] for p in pairs])
    for method, images in (
        ("bilinear", upsample(low, 64).clamp(-1, 1)),
        ("bicubic", upscale_output(low, 64)),
    ):
        errors = (images - high).pow(2).mean(dim=(1, 2, 3))
        assert results[method]["mse"] == pytest.approx(errors.mean().item())
        for group, members in (("mse_noisy", noisy), ("mse_determined", ~noisy)):
            expected = errors[members].mean().item() if members.any() else float("nan")
            assert results[method][group] == pytest.approx(expected, nan_ok=True)
        r = results[method]
        assert r["mse_flat"] < r["mse_determined"] < r["mse_edges"]  # a blur errs at edges
    assert 0 < results["bilinear"]["mse"] < 0.01  # the 32 px render is the 64 px one, blurred
    assert results["bilinear"]["colour"] == 1.0  # the oracle reads the upsampled renders
    assert results["sr"]["mse"] > 10 * results["bilinear"]["mse"]  # an untrained stage: noise
    assert set(results) == {"sr", "bilinear", "bicubic"}
    assert set(results["sr"]) == {"n", *MSE_GROUPS, *ATTRIBUTES}


def test_edge_mask_marks_both_sides_of_a_step():
    from demo_world.sr_quality import edge_mask

    image = -torch.ones(1, 3, 8, 8)
    image[:, 1, 2:5, 2:5] = 1.0  # a green 3x3 square
    mask = edge_mask(image)[0]
    grown = torch.zeros(8, 8, dtype=torch.bool)
    grown[1:6, 2:5] = grown[2:5, 1:6] = True  # the square and its 4-neighbours
    centre = torch.zeros(8, 8, dtype=torch.bool)
    centre[3, 3] = True
    assert torch.equal(mask, grown & ~centre)
