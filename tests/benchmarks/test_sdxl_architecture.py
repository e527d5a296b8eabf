"""The full-size SDXL benchmark architecture (`benchmarks.architectures.sdxl_model`), built on the
meta device (shapes only: no storage is allocated), and its reduced stand-in (tiny_sdxl)."""

from __future__ import annotations

import torch
from diffusers.models.attention import BasicTransformerBlock

from benchmarks import architectures
from editing.models.sdxl import SDXLModel


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_sdxl_model_on_the_meta_device_has_sdxl_base_sizes():
    model = architectures.sdxl_model(dtype=torch.bfloat16, device="meta")
    assert isinstance(model, SDXLModel) and model.conditioning_kind == "sdxl"
    parts = ("unet", "vae", "text_encoder", "text_encoder_2")
    assert all(p.is_meta for name in parts for p in getattr(model, name).parameters())
    counts = {name: _count(getattr(model, name)) for name in parts}
    assert counts == {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    }
    assert sum(counts.values()) == 3_468_837_867
    # storage dtypes: the UNet and text encoders in `dtype`, the VAE fp32, the schedule fp32
    assert model.unet.dtype == model.text_encoder.dtype == model.text_encoder_2.dtype
    assert model.dtype == torch.bfloat16 and model.vae.dtype == torch.float32
    assert model.alphas_cumprod.dtype == torch.float32 and not model.alphas_cumprod.is_meta
    # the conditioning widths: tokens 768 + 1280 = 2048, pooled 1280 + 6 x 256 time features
    unet = model.unet.config
    assert unet.cross_attention_dim == 2048 == 768 + 1280
    assert model.pooled_dim == 1280 == model.text_encoder_2.config.projection_dim
    assert unet.projection_class_embeddings_input_dim == 2816 == 1280 + 6 * 256
    assert model.resolution == 1024 and model.latent_shape == (4, 128, 128)
    assert model.vae_scale_factor == 8 and model.vae.config.scaling_factor == 0.13025
    # 70 transformer blocks: 2 x 1 + 2 x 10 down, 10 in the middle, 3 x 10 + 3 x 2 up
    blocks = [m for m in model.unet.modules() if isinstance(m, BasicTransformerBlock)]
    assert len(blocks) == 2 * 2 + 2 * 10 + 10 + 3 * 10 + 3 * 2 == 70
    heads = {(b.attn1.query_dim, b.attn1.heads) for b in blocks}
    assert heads == {(640, 10), (1280, 20)}  # 64-wide heads
    assert not any("attentions" in n for n, _ in model.unet.down_blocks[0].named_children())
    one, two = model.text_encoder.config, model.text_encoder_2.config
    assert (one.num_hidden_layers, one.hidden_size, one.hidden_act) == (12, 768, "quick_gelu")
    assert (two.num_hidden_layers, two.num_attention_heads, two.intermediate_size) == (32, 20, 5120)
    assert two.hidden_act == "gelu"


def test_model_for_builds_sdxl_full_size_and_tiny(monkeypatch):
    made = []
    monkeypatch.setattr(architectures, "sdxl_model", lambda *args: made.append(args) or "sdxl")
    assert architectures.model_for("sdxl") == "sdxl" and made == [(1024, torch.float32)]
    assert {"sdxl", "tiny_sdxl"} <= set(architectures.LATENT_ARCHS)
    tiny = architectures.model_for("tiny_sdxl", dtype=torch.bfloat16)
    assert isinstance(tiny, SDXLModel) and tiny.resolution == 32
    assert tiny.dtype == torch.bfloat16 and tiny.vae.dtype == torch.float32
