"""An intermediate `stage=pretrain_demo` checkpoint exports to a diffusers folder whatever the
demo architecture it was trained with (read back from its weights) and its UNet's target (stored
beside them)."""

from __future__ import annotations

import torch

from demo_world.demo_model import build_demo_model, load_demo_model
from lightning_modules.pretrain import PretrainDemoStage, demo_architecture, export_checkpoint

ARCH = {"block_out_channels": (8, 16, 16, 16), "text_width": 32, "text_layers": 2}


def test_architecture_is_read_back_and_the_ema_weights_exported(tmp_path):
    stage = PretrainDemoStage(build_demo_model(**ARCH, prediction_type="v_prediction", seed=3))
    with torch.no_grad():  # EMA weights that differ from the trained ones
        for p in stage.ema.parameters():
            p.add_(0.01)
    checkpoint = {"state_dict": stage.state_dict()}
    stage.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "last.ckpt")

    assert demo_architecture(stage.state_dict()) == {**ARCH, "context_length": 32}
    folder = export_checkpoint(tmp_path / "last.ckpt", tmp_path / "out")

    loaded = load_demo_model(folder)
    assert tuple(loaded.unet.config.block_out_channels) == ARCH["block_out_channels"]
    assert loaded.text_encoder.config.num_hidden_layers == ARCH["text_layers"]
    assert loaded.prediction_type == "v_prediction"
    for name, p in stage.ema["unet"].state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], p, rtol=0, atol=0)
