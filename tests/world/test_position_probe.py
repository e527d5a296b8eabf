"""The position probe: its scenes, its x0 errors and the caption-mean bound."""

from __future__ import annotations

import pytest
import torch

from demo_world.demo_model import build_demo_model
from demo_world.position_probe import (
    caption_mean_mse,
    position_probe,
    probe_scenes,
    scene_pixels,
)


def test_the_other_scene_moves_only_the_object():
    scenes, moved = probe_scenes(20, seed=3)
    for scene, other in zip(scenes, moved):
        a, b = scene.objects[0], other.objects[0]
        assert a.position != b.position
        assert (a.shape, a.colour, a.size, scene.background) == (
            b.shape,
            b.colour,
            b.size,
            other.background,
        )


def test_rows_are_seeded_and_the_gain_is_relative_to_the_true_caption():
    model = build_demo_model()
    model.unet.eval()
    rows = position_probe(model, n=4, timesteps=(300, 900))
    again = position_probe(model, n=4, timesteps=(300, 900))
    assert rows == again
    assert [r["t"] for r in rows] == [300, 900]
    for r in rows:
        a = float(model.alphas_cumprod[r["t"]])
        assert r["snr"] == pytest.approx(a / (1 - a))
        assert r["gain"] == pytest.approx((r["mse_other"] - r["mse_true"]) / r["mse_true"])
        assert min(r["mse_true"], r["mse_other"], r["mse_empty"]) > 0


def test_the_caption_mean_beats_the_mean_of_another_place():
    scenes, moved = probe_scenes(6, seed=1)
    own = caption_mean_mse(scenes, renders=8)
    assert 0 < own < 0.05
    # The mean of the moved scenes' renders, scored against the original renders, is worse: the
    # bound depends on where the object is, which is what a position-aware model must predict.
    wrong = torch.stack(
        [
            (scene_pixels(m, 100 + i) - scene_pixels(s, i)).pow(2).mean()
            for i, (s, m) in enumerate(zip(scenes, moved))
        ]
    ).mean()
    assert own < float(wrong)
