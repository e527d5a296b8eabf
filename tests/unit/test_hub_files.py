"""Hub downloads fetch only what the loader reads: diffusers' variant rule over the used
components, no root single-file checkpoints, no non-EMA weights, no safety checker."""

from __future__ import annotations

import pytest

from editing.models.loading import hub_files_to_fetch

COMPONENT_CONFIGS = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "vae/config.json",
]
# A Stable Diffusion 1.5 repository listing (its layout, names as published).
SD15 = [
    ".gitattributes",
    "README.md",
    "v1-5-pruned-emaonly.ckpt",
    "v1-5-pruned-emaonly.safetensors",
    "v1-5-pruned.ckpt",
    "v1-5-pruned.safetensors",
    "v1-inference.yaml",
    "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json",
    "safety_checker/model.fp16.safetensors",
    "safety_checker/model.safetensors",
    "safety_checker/pytorch_model.bin",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.safetensors",
    "text_encoder/pytorch_model.bin",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.bin",
    "unet/diffusion_pytorch_model.non_ema.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.bin",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    *COMPONENT_CONFIGS,
]
# Stable Diffusion 2.1 (no safety checker, root 768 checkpoints, fp16 variants).
SD21 = [
    ".gitattributes",
    "README.md",
    "v2-1_768-ema-pruned.ckpt",
    "v2-1_768-ema-pruned.safetensors",
    "v2-1_768-nonema-pruned.ckpt",
    "v2-1_768-nonema-pruned.safetensors",
    "feature_extractor/preprocessor_config.json",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.safetensors",
    "text_encoder/pytorch_model.bin",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.bin",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    *COMPONENT_CONFIGS,
]
PLAIN = [
    "text_encoder/model.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
]
FP16 = [
    "text_encoder/model.fp16.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.fp16.safetensors",
]


@pytest.mark.parametrize("listing", [SD15, SD21], ids=["sd15", "sd21"])
def test_the_loader_files_and_nothing_else(listing):
    assert hub_files_to_fetch(listing) == sorted(COMPONENT_CONFIGS + PLAIN)
    assert hub_files_to_fetch(listing, variant="fp16") == sorted(COMPONENT_CONFIGS + FP16)
    assert hub_files_to_fetch(listing, configs_only=True) == sorted(COMPONENT_CONFIGS)


def test_a_component_without_the_variant_falls_back_to_its_plain_weights():
    listing = [f for f in SD15 if f != "vae/diffusion_pytorch_model.fp16.safetensors"]
    chosen = hub_files_to_fetch(listing, variant="fp16")
    assert "vae/diffusion_pytorch_model.safetensors" in chosen
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in chosen
    assert not any(
        "non_ema" in f or "safety_checker" in f or "/" not in f and f.endswith(".safetensors")
        for f in chosen
    )
