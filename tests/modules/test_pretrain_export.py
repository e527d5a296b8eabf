"""An intermediate `stage=pretrain_demo` checkpoint exports to a diffusers folder whatever the
demo architecture it was trained with (read back from its weights) and its UNet's target (stored
beside them)."""

from __future__ import annotations

from pathlib import Path

import torch

from demo_world.demo_model import build_demo_model, load_demo_model
from lightning_modules.pretrain import PretrainDemoStage, demo_architecture, export_checkpoint

ARCH = {"block_out_channels": (8, 16, 16, 16), "text_width": 32, "text_layers": 2}


def save_checkpoint_with_distinct_ema(stage, path: Path) -> None:
    """Shift the stage's EMA weights off the trained ones, then save it as Lightning would."""
    with torch.no_grad():
        for p in stage.ema.parameters():
            p.add_(0.01)
    checkpoint = {"state_dict": stage.state_dict()}
    stage.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)


def test_architecture_is_read_back_and_the_ema_weights_exported(tmp_path):
    stage = PretrainDemoStage(build_demo_model(**ARCH, prediction_type="v_prediction", seed=3))
    save_checkpoint_with_distinct_ema(stage, tmp_path / "last.ckpt")

    assert demo_architecture(stage.state_dict()) == {**ARCH, "context_length": 32}
    folder = export_checkpoint(tmp_path / "last.ckpt", tmp_path / "out")

    loaded = load_demo_model(folder)
    assert tuple(loaded.unet.config.block_out_channels) == ARCH["block_out_channels"]
    assert loaded.text_encoder.config.num_hidden_layers == ARCH["text_layers"]
    assert loaded.prediction_type == "v_prediction"
    for name, p in stage.ema["unet"].state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], p, rtol=0, atol=0)


def test_a_demo_folder_loads_retargeted_to_v_with_its_weights_unchanged(tmp_path):
    import pytest

    from editing.errors import UserInputError

    stage = PretrainDemoStage(build_demo_model(**ARCH, seed=1))
    folder = stage.export(tmp_path / "eps")
    as_saved = load_demo_model(folder)
    as_v = load_demo_model(folder, prediction_type="v_prediction")
    assert as_saved.prediction_type == "epsilon" and as_v.prediction_type == "v_prediction"
    torch.testing.assert_close(as_v.alphas_cumprod, as_saved.alphas_cumprod, rtol=0, atol=0)
    for name, p in as_saved.unet.state_dict().items():
        torch.testing.assert_close(as_v.unet.state_dict()[name], p, rtol=0, atol=0)
    # The loss now asks for v = sqrt(a) eps - sqrt(1 - a) x0 where it asked for eps.
    x0, noise, t = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.tensor([100, 900])
    a = as_saved.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(as_saved.training_target(x0, noise, t), noise)
    torch.testing.assert_close(
        as_v.training_target(x0, noise, t), a.sqrt() * noise - (1 - a).sqrt() * x0
    )
    with pytest.raises(UserInputError, match="prediction_type"):
        load_demo_model(folder, prediction_type="sample")
    # Fine-tuned and exported again, the folder names no path of this machine.
    again = PretrainDemoStage(as_v).export(tmp_path / "v")
    assert str(folder) not in (again / "unet" / "config.json").read_text()
    assert load_demo_model(again).prediction_type == "v_prediction"


def test_an_sr_checkpoint_exports_its_ema_stage_with_its_architecture(tmp_path):
    from demo_world.demo_sr import load_demo_cascade
    from lightning_modules.pretrain_sr import PretrainDemoSRStage, export_sr_checkpoint

    base = PretrainDemoStage(build_demo_model(**ARCH, seed=2)).export(tmp_path / "base")
    arch = {"block_out_channels": [8, 16, 16], "attention_levels": 1, "noise_level": 40}
    stage = PretrainDemoSRStage(load_demo_model(base), arch=arch)
    save_checkpoint_with_distinct_ema(stage, tmp_path / "last.ckpt")

    folder = export_sr_checkpoint(tmp_path / "last.ckpt", tmp_path / "out", base)
    loaded = load_demo_cascade(base, folder).sr
    assert tuple(loaded.unet.config.block_out_channels) == (8, 16, 16)
    assert loaded.noise_level == 40
    for name, p in stage.ema.state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], p, rtol=0, atol=0)

    import pytest

    from editing.errors import UserInputError

    torch.save({"state_dict": stage.state_dict()}, tmp_path / "other.ckpt")
    with pytest.raises(UserInputError, match="not a stage=pretrain_demo_sr"):
        export_sr_checkpoint(tmp_path / "other.ckpt", tmp_path / "none", base)
    assert not (tmp_path / "none").exists()
