"""A LoRA fine-tune's adapter in diffusers' format: `load_lora_weights(folder)` on a real
StableDiffusionPipeline reproduces the project's own LoRA-applied UNet, under the key names
diffusers' own `save_lora_weights` writes."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import convert_state_dict_to_diffusers
from helpers import fit_stage
from peft import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file

from demo_world.tiny import build_tiny_model, tiny_components
from editing.io.artifacts import load_artifact, model_metadata
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing.models.diffusers_lora import DIFFUSERS_LORA_WEIGHTS_NAME
from editing.models.unet_weights import finetuned_unet
from lightning_modules.imagic import ImagicEmbedStage, ImagicFinetuneStage

RANK, ALPHA = 4, 8.0  # alpha != rank: the file must carry the scale


def _inputs(image_path, out):
    return Inputs(
        image=load_image(image_path, 32),
        target_prompt="a red circle",
        output_dir=out,
        checkpoint_dir=out,
        seed=0,
    )


def _finetune(image_path, out, mode: str) -> ImagicFinetuneStage:
    model = build_tiny_model()
    embed = ImagicEmbedStage(model, _inputs(image_path, out), num_steps=2, lr=1e-2)
    fit_stage(embed, model, embed.inputs, 2)
    embed.export(out)
    stage = ImagicFinetuneStage(
        model,
        _inputs(image_path, out),
        num_steps=3,
        lr=1e-2,
        finetune_mode=mode,
        lora_rank=RANK,
        lora_alpha=ALPHA,
    )
    fit_stage(stage, model, stage.inputs, 3)
    stage.export(out)
    return stage


def _pipeline(unet=None) -> StableDiffusionPipeline:
    """A StableDiffusionPipeline of the tiny base components (the base model's exact weights)."""
    parts = tiny_components()
    return StableDiffusionPipeline(
        vae=parts["vae"],
        text_encoder=parts["text_encoder"],
        tokenizer=parts["tokenizer"],
        unet=unet if unet is not None else parts["unet"],
        scheduler=parts["scheduler"],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    image = out / "input.png"
    from PIL import Image

    Image.new("RGB", (40, 48), (200, 40, 40)).save(image)
    return _finetune(image, out, "lora"), out


def _unet_out(unet, e: torch.Tensor) -> torch.Tensor:
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return unet(x, torch.tensor([500]), encoder_hidden_states=e).sample


def test_load_lora_weights_reproduces_the_trained_unet(lora_run):
    stage, out = lora_run
    folder = out / "imagic_finetune_diffusers_lora"
    assert (folder / DIFFUSERS_LORA_WEIGHTS_NAME).is_file()
    pipe = _pipeline()
    base = _unet_out(pipe.unet, stage.e_opt)
    pipe.load_lora_weights(str(folder))
    want = _unet_out(stage.model.unet.eval(), stage.e_opt)
    got = _unet_out(pipe.unet, stage.e_opt)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert (want - base).abs().max() > 1e-3, "the fine-tune must have moved the UNet"
    # A loader that ignores the header (a state dict, alpha taken as the rank) agrees too.
    plain = _pipeline()
    plain.load_lora_weights(load_file(str(folder / DIFFUSERS_LORA_WEIGHTS_NAME)))
    torch.testing.assert_close(_unet_out(plain.unet, stage.e_opt), want, rtol=1e-5, atol=1e-6)


def test_a_seeded_sample_equals_the_projects_lora_applied_unet(lora_run):
    stage, out = lora_run
    artifact = load_artifact(
        out / "imagic_finetune.safetensors", "imagic_finetune", expect=model_metadata(stage.model)
    )
    ours = _pipeline()
    ours.unet = finetuned_unet(ours.unet, artifact.tensors, artifact.metadata)
    theirs = _pipeline()
    theirs.load_lora_weights(str(out / "imagic_finetune_diffusers_lora"))
    uncond = torch.zeros_like(stage.e_opt)

    def sample(pipe):
        return pipe(
            prompt_embeds=stage.e_opt,
            negative_prompt_embeds=uncond,
            num_inference_steps=3,
            guidance_scale=3.0,
            height=32,
            width=32,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        ).images

    torch.testing.assert_close(sample(theirs), sample(ours), rtol=1e-4, atol=1e-5)


def test_the_file_has_the_keys_and_header_diffusers_writes(lora_run, tmp_path):
    stage, out = lora_run
    path = out / "imagic_finetune_diffusers_lora" / DIFFUSERS_LORA_WEIGHTS_NAME
    ours = load_file(str(path))
    # diffusers' own writer, on the trained (peft-wrapped) UNet
    reference = convert_state_dict_to_diffusers(get_peft_model_state_dict(stage.model.unet))
    StableDiffusionPipeline.save_lora_weights(tmp_path, unet_lora_layers=reference)
    theirs = load_file(str(tmp_path / DIFFUSERS_LORA_WEIGHTS_NAME))
    assert ours.keys() == theirs.keys()
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert all(k.startswith("unet.") for k in ours)
    assert all(k.endswith((".lora.down.weight", ".lora.up.weight")) for k in ours)
    assert any(k.endswith(".attn1.to_q.lora.down.weight") for k in ours)
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    config = json.loads(header["lora_adapter_metadata"])
    assert header["format"] == "pt"
    assert config == {
        "unet.r": RANK,
        "unet.lora_alpha": RANK,  # the scale alpha / rank is in the up weights
        "unet.target_modules": ["to_k", "to_out.0", "to_q", "to_v"],
    }
    up = next(k for k in ours if k.endswith(".lora.up.weight"))
    torch.testing.assert_close(ours[up], theirs[up] * (ALPHA / RANK))


def test_a_full_fine_tune_writes_no_lora_folder(image_path, tmp_path):
    _finetune(image_path, tmp_path, "full")
    assert (tmp_path / "imagic_finetune.safetensors").is_file()
    assert not (tmp_path / "imagic_finetune_diffusers_lora").exists()
