"""Does a demo model use the position phrase, and at which noise levels? A probe in seconds.

Sampling places an object where the model's x0 estimate puts it while the noise still hides the
layout, so a model that knows where things are must predict x0 better from x_t with the true
caption than with the same caption naming another place, at high noise. For single-object scenes
x0 (seeded, the training distribution), at each probed t:

    x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps,    x0_hat(x_t, t, c) from the model's eps or v,

and the mean ||x0_hat - x0||^2 per value is reported under the true caption, the caption with
another place, and the empty caption, with the relative gain of the true place,
(MSE_other - MSE_true) / MSE_true. The row `caption mean` is what a model that knows the
caption and nothing else would score as t -> T (the mean of renders of the same caption; the
best x0 estimate from pure noise): an x0 estimate far above it near t = T is one the sampler
cannot take the layout from.

    python -m demo_world.position_probe [--model DIR] [--scenes 64]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from demo_world.render import render
from demo_world.scene import ObjectSpec, Scene, caption, random_offset, sample_scene
from demo_world.vocabulary import POSITIONS
from editing.diffusion.ddim import predict_x0

PROBE_TIMESTEPS: tuple[int, ...] = (100, 300, 450, 550, 650, 750, 850, 950)


def scene_pixels(scene: Scene, seed: int) -> Tensor:
    """[3, 32, 32] in [-1, 1]."""
    image = render(scene, 32, np.random.default_rng(seed))
    return torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0


def probe_scenes(n: int, seed: int = 0) -> tuple[list[Scene], list[Scene]]:
    """n single-object scenes and, for each, the same scene with its object at another place."""
    rng = np.random.default_rng(seed)
    places = list(POSITIONS)
    scenes, moved = [], []
    for _ in range(n):
        scene = sample_scene(rng, max_objects=1)
        obj = scene.objects[0]
        other = places[(places.index(obj.position) + 1 + int(rng.integers(8))) % len(places)]
        scenes.append(scene)
        moved.append(Scene((ObjectSpec(obj.shape, obj.colour, obj.size, other),), scene.background))
    return scenes, moved


def caption_mean_mse(scenes: list[Scene], renders: int = 32, seed: int = 0) -> float:
    """Mean squared error of the per-caption mean image (over `renders` draws of jitter and
    background noise) against each scene's own render: the best x0 estimate at t = T."""
    rng = np.random.default_rng(seed)
    errors = []
    for i, scene in enumerate(scenes):
        obj = scene.objects[0]
        draws = []
        for r in range(renders):
            jittered = ObjectSpec(
                obj.shape, obj.colour, obj.size, obj.position, random_offset(rng, obj.size)
            )
            draws.append(
                scene_pixels(Scene((jittered,), scene.background), seed + 1 + i * renders + r)
            )
        errors.append((torch.stack(draws).mean(0) - scene_pixels(scene, i)).pow(2).mean())
    return float(torch.stack(errors).mean())


@torch.no_grad()
def position_probe(
    model, n: int = 64, timesteps: tuple[int, ...] = PROBE_TIMESTEPS, seed: int = 0
) -> list[dict[str, float]]:
    """One row per timestep: t, snr, mse_true, mse_other, mse_empty, gain (see the module)."""
    scenes, moved = probe_scenes(n, seed)
    x0 = torch.stack([scene_pixels(s, i) for i, s in enumerate(scenes)]).to(model.device)
    conditions = {
        "true": model.encode_prompt([caption(s) for s in scenes]),
        "other": model.encode_prompt([caption(s) for s in moved]),
        "empty": model.encode_prompt([""] * n),
    }
    rows = []
    for t in timesteps:
        a = model.alphas_cumprod[t]
        eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed * 1000 + t))
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps.to(x0.device)
        row: dict[str, float] = {"t": t, "snr": float(a / (1 - a))}
        for name, emb in conditions.items():
            eps_hat = model.eps(x_t, torch.full((n,), t, device=x0.device), emb)
            x0_hat = predict_x0(x_t, eps_hat, a)
            row[f"mse_{name}"] = float((x0_hat - x0).pow(2).mean())
        row["gain"] = (row["mse_other"] - row["mse_true"]) / row["mse_true"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    from demo_world.demo_model import load_demo_model

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--scenes", type=int, default=64)
    args = parser.parse_args(argv)
    model = load_demo_model(args.model)
    model.unet.eval()
    rows = position_probe(model, args.scenes)
    print(f"{'t':>4} {'SNR':>8} {'true':>8} {'other':>8} {'empty':>8} {'gain':>7}   x0 MSE")
    for r in rows:
        print(
            f"{r['t']:4d} {r['snr']:8.4f} {r['mse_true']:8.4f} {r['mse_other']:8.4f} "
            f"{r['mse_empty']:8.4f} {r['gain']:+7.3f}"
        )
    print(f"caption mean (best at t = T): {caption_mean_mse(probe_scenes(args.scenes)[0]):.4f}")
    return rows


if __name__ == "__main__":
    main()
