"""How well a demo super-resolution stage (32 -> 64 px) restores the world's 64 px renders.

Scenes come from the SR training pairs' generator under a held-out seed (`ShapesPairStream`, one-
and two-object scenes); each 32 px render is super-resolved with guided DDIM from its caption and
compared with the 64 px render of the same scene, beside bilinear upsampling of the 32 px input
(the SR stage's own conditioning, `editing.models.cascade.upsample`). Reported per method: mean
squared error against the 64 px truth (images in [-1, 1]) and the oracle's attribute accuracy on
the 64 px result (colour, shape, size, position, background, object count).

    python -m demo_world.sr_quality [--sr assets/demo/sr] [--n 90] [--guidance 4] [--steps 50]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from demo_world.oracle import judge, read_image
from demo_world.scene import parse_caption
from demo_world.shapes_datamodule import ShapesPairStream
from editing.models.cascade import SuperResolutionModel, super_resolve, upsample

ATTRIBUTES = ("colour", "shape", "size", "position", "background", "count")
HELD_OUT_SEED = 12345  # the SR training stream uses the run's seed (0 by default)


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
    """{"sr": {...}, "bilinear": {...}}, each {"mse": mean MSE, <attribute>: accuracy, "n": n}.

    `base` is the demo base model (its text encoder conditions the SR stage).
    """
    stream = ShapesPairStream(sr.resolution, base.resolution, seed=seed)
    uncond = base.encode_prompt([""])
    totals = {m: dict.fromkeys(("mse", *ATTRIBUTES), 0.0) for m in ("sr", "bilinear")}
    for start in range(0, n, batch_size):
        pairs = [stream.sample(k) for k in range(start, min(n, start + batch_size))]
        high = torch.stack([p["image"] for p in pairs])
        low = torch.stack([p["low_res"] for p in pairs])
        captions = [p["caption"] for p in pairs]
        outputs = {
            "sr": super_resolve(
                sr,
                low,
                base.encode_prompt(captions),
                uncond,
                list(range(start, start + len(pairs))),
                num_inference_steps,
                guidance_scale,
                noise_level,
            ),
            "bilinear": upsample(low, sr.resolution).clamp(-1, 1),
        }
        for method, images in outputs.items():
            totals[method]["mse"] += (images - high).pow(2).mean(dim=(1, 2, 3)).sum().item()
            for image, text in zip(images, captions):
                verdict = judge(read_image(image), parse_caption(text))
                for a in ATTRIBUTES:
                    totals[method][a] += bool(verdict[a])
    return {m: {"n": n, **{k: v / n for k, v in t.items()}} for m, t in totals.items()}


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
    print(f"{'method':>8s} {'n':>4s} {'MSE':>8s} " + " ".join(f"{a:>10s}" for a in ATTRIBUTES))
    for method, r in results.items():
        print(
            f"{method:>8s} {r['n']:4d} {r['mse']:8.4f} "
            + " ".join(f"{r[a]:10.1%}" for a in ATTRIBUTES)
        )
    return results


if __name__ == "__main__":
    main()
