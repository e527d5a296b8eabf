"""Prompt following of a text-to-image model on the shapes world, judged by the oracle.

For every colour x shape pair, `samples_per_pair` captions with random size, position and
background are generated (seeded) and sampled with guided DDIM; the oracle then reads each image.
Reported: colour+shape accuracy (both right: the demo model's main bar), and colour, shape, size,
position, background and single-object-count accuracies.

    python -m demo_world.prompt_following [--model assets/demo/model] [--guidance 5] [--steps 50]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from demo_world.oracle import judge, read_image
from demo_world.scene import ObjectSpec, Scene, caption
from demo_world.vocabulary import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES
from editing.diffusion.noise import initial_noise
from editing.diffusion.sampling import sample


def prompts_for(samples_per_pair: int, seed: int = 0) -> list[Scene]:
    """Single-object scenes: every colour x shape pair with random size, position, background."""
    rng = np.random.default_rng(seed)
    scenes = []
    for colour, shape in itertools.product(COLOURS, SHAPES):
        for _ in range(samples_per_pair):
            obj = ObjectSpec(
                shape, colour, str(rng.choice(list(SIZES))), str(rng.choice(list(POSITIONS)))
            )
            scenes.append(Scene((obj,), str(rng.choice(list(BACKGROUNDS)))))
    return scenes


@torch.no_grad()
def evaluate(
    model,
    samples_per_pair: int = 3,
    guidance_scale: float = 5.0,
    num_inference_steps: int = 50,
    batch_size: int = 30,
    seed: int = 0,
) -> dict:
    """Accuracy per attribute over 30 x `samples_per_pair` generated images."""
    scenes = prompts_for(samples_per_pair, seed)
    keys = ("colour", "shape", "size", "position", "background", "count")
    totals = dict.fromkeys((*keys, "colour+shape"), 0)
    images = []
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        cond = model.encode_prompt([caption(s) for s in chunk])
        x_T = initial_noise(
            list(range(seed * 10_000 + start, seed * 10_000 + start + len(chunk))),
            model.latent_shape,
            model.device,
        )
        x = (
            model.decode(sample(model, cond, x_T, num_inference_steps, guidance_scale))
            .clamp(-1, 1)
            .cpu()
        )
        for scene, img in zip(chunk, x):
            verdict = judge(read_image(img), scene)
            for k in keys:
                totals[k] += bool(verdict[k])
            totals["colour+shape"] += bool(verdict["colour"] and verdict["shape"])
            images.append(img)
    n = len(scenes)
    return {"n": n, **{k: v / n for k, v in totals.items()}, "images": images}


def main(argv: list[str] | None = None) -> dict:
    from demo_world.demo_model import load_demo_model

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="diffusers folder (default: the shipped demo model)",
    )
    parser.add_argument("--samples-per-pair", type=int, default=3)
    parser.add_argument("--guidance", type=float, nargs="+", default=[5.0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--grid",
        type=Path,
        default=None,
        help="save the samples of the first guidance as a PNG grid",
    )
    args = parser.parse_args(argv)
    model = load_demo_model(args.model)
    results = {}
    print(
        f"{'guidance':>8s} {'n':>4s} {'col+shape':>9s} {'colour':>7s} {'shape':>7s} {'size':>7s} {'position':>8s} {'backgr.':>7s} {'count':>7s}"
    )
    for g in args.guidance:
        r = evaluate(model, args.samples_per_pair, g, args.steps)
        results[g] = r
        print(
            f"{g:8.1f} {r['n']:4d} {r['colour+shape']:9.1%} {r['colour']:7.1%} {r['shape']:7.1%} {r['size']:7.1%} {r['position']:8.1%} {r['background']:7.1%} {r['count']:7.1%}"
        )
    if args.grid:
        from editing.io.grid import make_grid
        from editing.io.images import to_pil

        first = results[args.guidance[0]]
        make_grid(
            [to_pil(i) for i in first["images"]], [""] * len(first["images"]), columns=15, cell=64
        ).save(args.grid)
    return results


if __name__ == "__main__":
    main()
