"""Full-size architectures with random weights, for speed and memory benchmarks.

Speed and memory do not depend on the weights, so these configurations (copied from the public
model cards' config files: layer widths, depths, attention sizes) let the benchmarks measure the
real costs without downloading anything.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from editing.models import DiffusionModel
from editing.tiny import sd_scheduler
from editing.vocab import build_clip_tokenizer


def sd15_model(resolution: int = 512, dtype: torch.dtype = torch.float32) -> DiffusionModel:
    """Stable Diffusion 1.5's UNet (860M), VAE (84M) and CLIP ViT-L/14 text encoder (123M)."""
    unet = UNet2DConditionModel(
        sample_size=resolution // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=resolution,
    )
    tokenizer = build_clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    model = DiffusionModel(
        unet,
        text_encoder,
        tokenizer,
        sd_scheduler(),
        vae,
        name="sd15-random",
        resolution=resolution,
    )
    return model.to(dtype=dtype).freeze()


def model_for(arch: str, resolution: int | None = None) -> DiffusionModel:
    """ "tiny" | "demo" | "sd15" as a frozen model with random (or shipped demo) weights."""
    if arch == "tiny":
        from editing.tiny import build_tiny_model

        return build_tiny_model(resolution=resolution or 32)
    if arch == "demo":
        from editing.demo_model import build_demo_model

        return build_demo_model().freeze()
    if arch == "sd15":
        return sd15_model(resolution or 512)
    raise ValueError(f"unknown architecture {arch!r}")
