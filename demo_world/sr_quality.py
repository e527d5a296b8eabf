"""How well a demo super-resolution stage (32 -> 64 px) restores the world's 64 px renders.

Scenes come from the SR training pairs' generator under a held-out seed (`ShapesPairStream`, one-
and two-object scenes); each 32 px render is super-resolved with guided DDIM from its caption and
compared with the 64 px render of the same scene, beside bilinear upsampling of the 32 px input
(the SR stage's own conditioning, `editing.models.cascade.upsample`) and bicubic upsampling
(`method.sr=none`, `editing.models.cascade.upscale_output`). Reported per method: the oracle's
attribute accuracy on the 64 px result (colour, shape, size, position, background, object count)
and the mean squared error against the 64 px truth (images in [-1, 1]):

    mse             over every scene;
    mse_noisy       over the scenes on the noisy background, whose 64 px pixel noise is drawn
                    independently of the 32 px one: no method can restore it, and a sampler,
                    which draws noise of its own, pays about twice its variance where a blur
                    pays it once;
    mse_determined  over the other scenes (their 64 px image is determined by the scene);
    mse_edges       over their pixels next to an edge of the truth (a neighbour differs by more
                    than `EDGE_STEP` in some channel);
    mse_flat        over their other pixels.

    python -m demo_world.sr_quality [--sr assets/demo/sr] [--n 90] [--guidance 4] [--steps 50]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

from demo_world.oracle import judge, read_image
from demo_world.scene import parse_caption
from demo_world.shapes_datamodule import ShapesPairStream
from demo_world.vocabulary import BACKGROUNDS
from editing.models.cascade import SuperResolutionModel, super_resolve, upsample, upscale_output

ATTRIBUTES = ("colour", "shape", "size", "position", "background", "count")
MSE_GROUPS = ("mse", "mse_determined", "mse_noisy", "mse_edges", "mse_flat")
METHODS = ("sr", "bilinear", "bicubic")
HELD_OUT_SEED = 12345  # the SR training stream uses the run's seed (0 by default)
EDGE_STEP = 0.05  # in [-1, 1] units: about 6 gray levels


def edge_mask(images: Tensor) -> Tensor:
    """[B, 3, H, W] -> bool [B, H, W]: pixels with a 4-neighbour differing by more than
    `EDGE_STEP` in some channel."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().amax(dim=1) > EDGE_STEP
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().amax(dim=1) > EDGE_STEP
    mask = torch.zeros(images.shape[0], *images.shape[2:], dtype=torch.bool)
    mask[..., :, 1:] |= dx
    mask[..., :, :-1] |= dx
    mask[..., 1:, :] |= dy
    mask[..., :-1, :] |= dy
    return mask


@torch.no_grad()
def evaluate(
    base,
    sr: SuperResolutionModel,
    n: int = 90,
    guidance_scale: float = 4.0,
    num_inference_steps: int = 50,
    noise_level: int | None = None,
    batch_size: int = 30,
    seed: int = HELD_OUT_SEED,
) -> dict[str, dict[str, float]]:
    """{method: {"n": n, <MSE_GROUPS>: mean squared error, <attribute>: accuracy}} for METHODS; a
    group with no scene or pixel is nan.

    `base` is the demo base model (its text encoder conditions the SR stage).
    """
    stream = ShapesPairStream(sr.resolution, base.resolution, seed=seed)
    uncond = base.encode_prompt([""])
    hits = {m: dict.fromkeys(ATTRIBUTES, 0) for m in METHODS}
    sums = {m: dict.fromkeys(MSE_GROUPS, 0.0) for m in METHODS}
    counts = dict.fromkeys(MSE_GROUPS, 0)
    for start in range(0, n, batch_size):
        pairs = [stream.sample(k) for k in range(start, min(n, start + batch_size))]
        high = torch.stack([p["image"] for p in pairs])
        low = torch.stack([p["low_res"] for p in pairs])
        scenes = [parse_caption(p["caption"]) for p in pairs]
        noisy = torch.tensor([BACKGROUNDS[s.background].pattern == "noise" for s in scenes])
        near_edge, determined = edge_mask(high), ~noisy[:, None, None]
        edges, flat = near_edge & determined, ~near_edge & determined
        outputs = {
            "sr": super_resolve(
                sr,
                low,
                base.encode_prompt([p["caption"] for p in pairs]),
                uncond,
                list(range(start, start + len(pairs))),
                num_inference_steps,
                guidance_scale,
                noise_level,
            ),
            "bilinear": upsample(low, sr.resolution).clamp(-1, 1),
            "bicubic": upscale_output(low, sr.resolution),
        }
        members = {
            "mse": torch.ones(len(pairs), dtype=torch.bool),
            "mse_determined": ~noisy,
            "mse_noisy": noisy,
        }
        for group, m in members.items():
            counts[group] += int(m.sum())
        counts["mse_edges"] += int(edges.sum())
        counts["mse_flat"] += int(flat.sum())
        for method, images in outputs.items():
            pixel_error = (images - high).pow(2).mean(dim=1)  # [B, H, W]
            per_image = pixel_error.mean(dim=(1, 2))
            for group, m in members.items():
                sums[method][group] += per_image[m].sum().item()
            sums[method]["mse_edges"] += pixel_error[edges].sum().item()
            sums[method]["mse_flat"] += pixel_error[flat].sum().item()
            for image, scene in zip(images, scenes):
                verdict = judge(read_image(image), scene)
                for a in ATTRIBUTES:
                    hits[method][a] += bool(verdict[a])
    return {
        m: {
            "n": n,
            **{g: sums[m][g] / counts[g] if counts[g] else float("nan") for g in MSE_GROUPS},
            **{a: hits[m][a] / n for a in ATTRIBUTES},
        }
        for m in METHODS
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    from demo_world.demo_sr import load_demo_cascade

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="base model folder")
    parser.add_argument("--sr", type=Path, default=None, help="SR folder (default: shipped)")
    parser.add_argument("--n", type=int, default=90)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--noise-level", type=int, default=None)
    args = parser.parse_args(argv)
    base = load_demo_cascade(args.model, args.sr)
    results = evaluate(base, base.sr, args.n, args.guidance, args.steps, args.noise_level)
    print(
        f"{'method':>8s} {'n':>4s} "
        + " ".join(f"{g:>14s}" for g in MSE_GROUPS)
        + " "
        + " ".join(f"{a:>10s}" for a in ATTRIBUTES)
    )
    for method, r in results.items():
        print(
            f"{method:>8s} {r['n']:4d} "
            + " ".join(f"{r[g]:14.4f}" for g in MSE_GROUPS)
            + " "
            + " ".join(f"{r[a]:10.1%}" for a in ATTRIBUTES)
        )
    return results


if __name__ == "__main__":
    main()
