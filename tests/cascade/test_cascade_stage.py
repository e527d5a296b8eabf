"""Training contract of Imagic's SR fine-tune: only the SR weights change, artifacts round-trip."""

from __future__ import annotations

import pytest
import torch
from helpers import fit_stage

from editing.errors import UserInputError
from editing.io.artifacts import load_artifact, model_metadata
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing.models.cascade import sr_metadata, with_sr
from editing.models.unet_weights import finetuned_unet
from lightning_modules.imagic_sr import ImagicSRFinetuneStage, sr_step_draws


def _inputs(image_path, out, resolution=16):
    return Inputs(
        image=load_image(image_path, resolution),
        target_prompt="a red circle",
        output_dir=out,
        checkpoint_dir=out,
    )


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_sr_finetune_changes_only_the_sr_weights(tiny_if, image_path, tmp_path, mode):
    parts = {"base unet": tiny_if.unet, "text encoder": tiny_if.text_encoder}
    parts["sr unet"] = tiny_if.sr.unet
    before = {name: _state(module) for name, module in parts.items()}
    lr = 1e-3 if mode == "full" else 1e-2
    stage = ImagicSRFinetuneStage(
        tiny_if, _inputs(image_path, tmp_path), num_steps=3, lr=lr, finetune_mode=mode
    )
    assert stage.x_low.shape == (1, 3, 16, 16) and stage.x_high.shape == (1, 3, 32, 32)
    fit_stage(stage, tiny_if, stage.inputs, 3)
    for name, module in parts.items():  # the cascade object is never mutated
        assert _equal(before[name], _state(module)), f"{name} changed"
    trained = {n for n, p in stage.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith("model.unet.") for n in trained)
    after = _state(stage.model.unet)
    if mode == "full":
        assert not _equal(before["sr unet"], after)
    else:
        base_after = {k.replace(".base_layer", ""): v for k, v in after.items() if "lora" not in k}
        assert _equal(before["sr unet"], base_after)
        assert any(v.abs().max() > 0 for k, v in after.items() if "lora_B" in k)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_sr_artifact_reproduces_the_trained_unet(tiny_if, image_path, tmp_path, mode):
    stage = ImagicSRFinetuneStage(
        tiny_if, _inputs(image_path, tmp_path), num_steps=2, lr=1e-2, finetune_mode=mode
    )
    fit_stage(stage, tiny_if, stage.inputs, 2)
    expect = {**model_metadata(tiny_if), **sr_metadata(tiny_if.sr)}
    expect.update(image_sha256=stage.inputs.image.sha256, target_prompt="a red circle")
    artifact = load_artifact(stage.export(tmp_path), "imagic_sr_finetune", expect=expect)
    assert artifact.metadata["sr_noise_level"] == "250"
    assert artifact.metadata["sr_image_sha256"] == load_image(stage.inputs.image.path, 32).sha256
    applied = finetuned_unet(tiny_if.sr.unet, artifact.tensors, artifact.metadata)
    x, t = torch.randn(1, 6, 32, 32, generator=torch.Generator().manual_seed(0)), 500
    kwargs = {"encoder_hidden_states": stage.e_tgt, "class_labels": torch.tensor([250])}
    with torch.no_grad():
        want = stage.model.unet.eval()(x, t, **kwargs).sample
        got = applied(x, t, **kwargs).sample
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_sr_draws_repeat_and_differ_per_step_and_rank():
    a = sr_step_draws(0, 0, 5, 2, (3, 8, 8), 1000)
    assert all(torch.equal(x, y) for x, y in zip(a, sr_step_draws(0, 0, 5, 2, (3, 8, 8), 1000)))
    for other in (
        sr_step_draws(0, 0, 6, 2, (3, 8, 8), 1000),
        sr_step_draws(0, 1, 5, 2, (3, 8, 8), 1000),
    ):
        assert not torch.equal(a[1], other[1])
    assert not torch.equal(a[1], a[2])  # diffusion noise and augmentation noise are independent


def test_sr_stage_refuses_a_model_without_sr(tiny_if, image_path, tmp_path):
    with pytest.raises(UserInputError, match="needs a cascade.*no super-resolution stage"):
        ImagicSRFinetuneStage(with_sr(tiny_if, None), _inputs(image_path, tmp_path))


@pytest.mark.parametrize(("mode", "lr"), [("full", 5e-7), ("lora", 1e-4)])
def test_sr_learning_rate_defaults_by_mode_as_the_base_fine_tune(
    tiny_if, image_path, tmp_path, mode, lr
):
    from lightning_modules.unet_finetune import FINETUNE_LR

    stage = ImagicSRFinetuneStage(tiny_if, _inputs(image_path, tmp_path), finetune_mode=mode)
    assert stage.lr == FINETUNE_LR[mode] == lr
