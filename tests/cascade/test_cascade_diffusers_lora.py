"""The SR fine-tune of a cascade also writes its LoRA adapter in diffusers' format:
`IFSuperResolutionPipeline.load_lora_weights(folder)` reproduces the trained SR UNet."""

from __future__ import annotations

import copy

import torch
from diffusers import IFSuperResolutionPipeline
from helpers import fit_stage

from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from lightning_modules.imagic_sr import ImagicSRFinetuneStage


def test_sr_lora_loads_into_an_if_super_resolution_pipeline(tiny_if, image_path, tmp_path):
    inputs = Inputs(
        image=load_image(image_path, 16),
        target_prompt="a red circle",
        output_dir=tmp_path,
        checkpoint_dir=tmp_path,
    )
    stage = ImagicSRFinetuneStage(
        tiny_if, inputs, num_steps=2, lr=1e-2, finetune_mode="lora", lora_alpha=2.0
    )
    fit_stage(stage, tiny_if, stage.inputs, 2)
    stage.export(tmp_path)
    sr = tiny_if.sr
    pipe = IFSuperResolutionPipeline(
        tokenizer=tiny_if.tokenizer,
        text_encoder=copy.deepcopy(tiny_if.text_encoder),
        unet=copy.deepcopy(sr.unet),
        scheduler=sr.scheduler,
        image_noising_scheduler=sr.noise_scheduler,
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        requires_safety_checker=False,
    )
    pipe.load_lora_weights(str(tmp_path / "imagic_sr_finetune_diffusers_lora"))
    x = torch.randn(1, 6, 32, 32, generator=torch.Generator().manual_seed(0))
    kwargs = {"encoder_hidden_states": stage.e_tgt, "class_labels": torch.tensor([250])}
    with torch.no_grad():
        want = stage.model.unet.eval()(x, 500, **kwargs).sample
        got = pipe.unet(x, 500, **kwargs).sample
        base = sr.unet(x, 500, **kwargs).sample
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert (want - base).abs().max() > 1e-4, "the fine-tune must have moved the SR UNet"
