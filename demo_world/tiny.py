"""Tiny random Stable-Diffusion-architecture components, built in-process and offline.

`base_model=tiny` uses these for tests and smoke runs: the same classes as real checkpoints
(`UNet2DConditionModel`, `AutoencoderKL`, `CLIPTextModel`, `CLIPTokenizer`, `DDIMScheduler`), a few
thousand times smaller, with weights drawn from a fixed seed so that a training run and a later edit
run rebuild exactly the same base model.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from demo_world.tokenizer_vocab import build_clip_tokenizer
from editing.models.diffusion_model import DiffusionModel
from editing.models.loading import set_vae_tiling, weights_dtype


def sd_scheduler(prediction_type: str = "epsilon") -> DDIMScheduler:
    """The Stable Diffusion 1.x DDIM scheduler as every public reference implementation uses it (docs/methods.md)."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def tiny_text_config(tokenizer, width: int, **extra) -> CLIPTextConfig:
    """A 2-layer, 4-head CLIP text encoder config of hidden size `width` over `tokenizer`'s
    vocabulary and context length; `extra` (e.g. `projection_dim`) passes through."""
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def tiny_vae(resolution: int, scaling_factor: float = 0.18215) -> AutoencoderKL:
    """A random 4-channel VAE with a downsampling factor of 4 (three levels), drawn from the
    current RNG; `scaling_factor` as the family's real VAE (SD 0.18215, SDXL 0.13025)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=resolution,
        scaling_factor=scaling_factor,
    )


def tiny_components(
    seed: int = 0,
    resolution: int = 32,
    latent: bool = True,
    prediction_type: str = "epsilon",
    text_dim: int = 32,
) -> dict:
    """Random tiny SD components (unet, vae or None, text_encoder, tokenizer, scheduler).

    Latent: a 3-level VAE (factor 4) and a 2-level UNet with cross-attention at both levels and in the
    middle block. Pixel (`latent=False`): the same UNet on 3-channel images.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = build_clip_tokenizer()
        text_encoder = CLIPTextModel(tiny_text_config(tokenizer, text_dim))
        vae = None
        channels = 3
        factor = 1
        if latent:
            vae = tiny_vae(resolution)
            channels, factor = 4, 4
        unet = UNet2DConditionModel(
            sample_size=resolution // factor,
            in_channels=channels,
            out_channels=channels,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=text_dim,
            attention_head_dim=8,
            norm_num_groups=8,
        )
    return {
        "unet": unet.eval(),
        "vae": vae.eval() if vae is not None else None,
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": sd_scheduler(prediction_type),
    }


def build_tiny_model(
    name: str = "tiny",
    seed: int = 0,
    resolution: int = 32,
    latent: bool = True,
    prediction_type: str = "epsilon",
    dtype: str = "float32",
    vae_tiling: bool = False,
) -> DiffusionModel:
    """A tiny random `DiffusionModel`; its identity name records the seed and variant.

    `dtype` is the weights' storage dtype, as `base_model.dtype` of a loaded model: the fp32
    weights drawn from the seed, rounded. `vae_tiling` as `editing.models.loading.set_vae_tiling`."""
    parts = tiny_components(seed, resolution, latent, prediction_type)
    for key in ("unet", "vae", "text_encoder"):  # not the model: its schedule buffers stay fp32
        if parts[key] is not None:
            parts[key].to(weights_dtype(dtype))
    variant = ("latent" if latent else "pixel") + (
        "-v" if prediction_type == "v_prediction" else ""
    )
    model = DiffusionModel(
        parts["unet"],
        parts["text_encoder"],
        parts["tokenizer"],
        parts["scheduler"],
        parts["vae"],
        name=f"{name}-{variant}-seed{seed}",
        resolution=resolution,
    )
    return set_vae_tiling(model, vae_tiling).freeze()
