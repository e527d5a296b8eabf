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


# Stable Diffusion XL 1.0 base: two text encoders and tokenizers, root single files, an extra VAE
# folder (vae_1_0), ONNX/OpenVINO/Flax exports.
SDXL_CONFIGS = [
    *COMPONENT_CONFIGS,
    "text_encoder_2/config.json",
    "tokenizer_2/merges.txt",
    "tokenizer_2/special_tokens_map.json",
    "tokenizer_2/tokenizer_config.json",
    "tokenizer_2/vocab.json",
]
SDXL = [
    ".gitattributes",
    "LICENSE.md",
    "README.md",
    "sd_xl_base_1.0.safetensors",
    "sd_xl_base_1.0_0.9vae.safetensors",
    "sd_xl_offset_example-lora_1.0.safetensors",
    "text_encoder/flax_model.msgpack",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.onnx",
    "text_encoder/model.safetensors",
    "text_encoder/openvino_model.bin",
    "text_encoder/openvino_model.xml",
    "text_encoder_2/flax_model.msgpack",
    "text_encoder_2/model.fp16.safetensors",
    "text_encoder_2/model.onnx",
    "text_encoder_2/model.onnx_data",
    "text_encoder_2/model.safetensors",
    "unet/diffusion_flax_model.msgpack",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/model.onnx",
    "unet/model.onnx_data",
    "vae/diffusion_flax_model.msgpack",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "vae_1_0/config.json",
    "vae_1_0/diffusion_pytorch_model.fp16.safetensors",
    "vae_1_0/diffusion_pytorch_model.safetensors",
    "vae_decoder/config.json",
    "vae_decoder/model.onnx",
    "vae_encoder/config.json",
    "vae_encoder/model.onnx",
    *SDXL_CONFIGS,
]


def test_the_sdxl_layout_fetches_both_text_encoders_and_tokenizers():
    plain = [*PLAIN, "text_encoder_2/model.safetensors"]
    fp16 = [*FP16, "text_encoder_2/model.fp16.safetensors"]
    assert hub_files_to_fetch(SDXL) == sorted(SDXL_CONFIGS + plain)
    assert hub_files_to_fetch(SDXL, variant="fp16") == sorted(SDXL_CONFIGS + fp16)
    assert hub_files_to_fetch(SDXL, configs_only=True) == sorted(SDXL_CONFIGS)
