"""A tiny random Stable-Diffusion-architecture model written as a diffusers folder.

Benchmarks take a diffusers folder (`--model FOLDER`) so that any other implementation can be run
on exactly the same weights: write one with

    python -m benchmarks.folders runs/tiny_sd64            # 64 px images, 8x8 latents
    python -m benchmarks.folders runs/sd15_128 --arch sd15 --resolution 128   # SD 1.5's sizes

It has SD 1.x's layout at toy widths: a 4-level VAE (downsampling factor 8, as SD's), the tests'
2-level UNet with cross-attention, a 2-layer CLIP text encoder and SD's DDIM schedule, with
weights drawn from a fixed seed. `--arch sd15` writes Stable Diffusion 1.5's architecture instead
(`benchmarks.architectures.sd15_model`: 860M-parameter UNet, random weights, about 4 GB in fp32).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from demo_world.tiny import tiny_components
from editing.models.diffusion_model import DiffusionModel
from editing.models.loading import save_model


def tiny_sd_model(resolution: int = 64, seed: int = 0) -> DiffusionModel:
    """The tests' tiny components with a factor-8 VAE (latents [4, resolution/8, resolution/8])."""
    parts = tiny_components(seed, resolution // 2, latent=True)  # UNet sample size = res / 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(16, 32, 32, 32),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=resolution,
        ).eval()
    return DiffusionModel(
        parts["unet"],
        parts["text_encoder"],
        parts["tokenizer"],
        parts["scheduler"],
        vae,
        name=f"tiny-sd{resolution}-seed{seed}",
        resolution=resolution,
    ).freeze()


def write_tiny_sd_folder(folder: str | Path, resolution: int = 64, seed: int = 0) -> Path:
    """Write `tiny_sd_model(resolution, seed)` to `folder` (diffusers layout) and return it."""
    return save_model(tiny_sd_model(resolution, seed), folder)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arch", default="tiny", choices=["tiny", "sd15"])
    args = parser.parse_args(argv)
    if args.arch == "sd15":
        from benchmarks.architectures import sd15_model

        torch.manual_seed(args.seed)
        path = save_model(sd15_model(args.resolution), args.folder)
    else:
        path = write_tiny_sd_folder(args.folder, args.resolution, args.seed)
    print(path)
    return path


if __name__ == "__main__":
    main()
