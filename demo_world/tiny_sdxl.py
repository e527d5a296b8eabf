"""A tiny random SDXL-architecture model, built in-process and offline (`base_model=tiny_sdxl`).

The same classes and wiring as SDXL 1.0 base: two CLIP text encoders (the second with a
projection, whose projected end-of-text embedding is the pooled condition), cross-attention on
their concatenated token embeddings, and a UNet with `addition_embed_type="text_time"` taking the
pooled embedding plus the six size/crop time ids. Sizes are a few thousand times smaller; the
weights are drawn from a fixed seed, so a training run and a later edit rebuild the same model.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from demo_world.tiny import sd_scheduler, tiny_text_config, tiny_vae
from demo_world.tokenizer_vocab import build_clip_tokenizer
from editing.models.loading import set_vae_tiling, weights_dtype
from editing.models.sdxl import SDXLModel

TEXT_DIMS = (16, 32)
"""Hidden widths of the two tiny text encoders (SDXL: 768 and 1280); tokens are 48 wide."""
POOLED_DIM = 32
"""The second encoder's projection width, the pooled embedding's P (SDXL: 1280)."""
TIME_EMBED_DIM = 8
"""Fourier features per time id (SDXL: 256); the UNet's added input is P + 6 x 8 = 80 wide."""


def tiny_sdxl_components(seed: int = 0, resolution: int = 32) -> dict:
    """Random tiny SDXL components: unet, vae, text_encoder, text_encoder_2, tokenizer,
    tokenizer_2, scheduler (SDXL's betas: those of SD 1.x)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer, tokenizer_2 = build_clip_tokenizer(), build_clip_tokenizer()
        text_encoder = CLIPTextModel(tiny_text_config(tokenizer, TEXT_DIMS[0]))
        text_encoder_2 = CLIPTextModelWithProjection(
            tiny_text_config(tokenizer_2, TEXT_DIMS[1], projection_dim=POOLED_DIM)
        )
        vae = tiny_vae(resolution, scaling_factor=0.13025)  # SDXL's VAE factor
        unet = UNet2DConditionModel(
            sample_size=resolution // 4,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            transformer_layers_per_block=(1, 2),
            attention_head_dim=(2, 4),
            cross_attention_dim=sum(TEXT_DIMS),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=POOLED_DIM + 6 * TIME_EMBED_DIM,
            norm_num_groups=8,
        )
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer_2,
        "scheduler": sd_scheduler(),
    }


def build_tiny_sdxl(
    name: str = "tiny_sdxl",
    seed: int = 0,
    resolution: int = 32,
    dtype: str = "float32",
    vae_dtype: str = "float32",
    vae_tiling: bool = False,
) -> SDXLModel:
    """A tiny random `SDXLModel` (`base_model=tiny_sdxl`); its identity name records the seed.

    `dtype` is the storage dtype of the UNet and text encoders, `vae_dtype` the VAE's (fp32 by
    default, as for the real SDXL whose VAE overflows in fp16)."""
    parts = tiny_sdxl_components(seed, resolution)
    for key in ("unet", "text_encoder", "text_encoder_2"):
        parts[key].to(weights_dtype(dtype))
    parts["vae"].to(weights_dtype(vae_dtype))
    model = SDXLModel(
        parts["unet"],
        parts["text_encoder"],
        parts["text_encoder_2"],
        parts["tokenizer"],
        parts["tokenizer_2"],
        parts["scheduler"],
        parts["vae"],
        name=f"{name}-seed{seed}",
        resolution=resolution,
    )
    return set_vae_tiling(model, vae_tiling).freeze()
