"""offload_frozen=true: the frozen text encoder and VAE sit on the offload device during the fit,
come back afterwards (also when the fit fails), and the artifact is the same as without."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_config
from lightning.pytorch import Callback

from callbacks.offload_frozen import OffloadFrozen
from editing_app.commands.train import train


def _train(image_path, out, *extra):
    return train(
        compose_config(
            "train",
            [
                "stage=imagic_embed",
                "base_model=tiny",
                "trainer=cpu",
                "logger=none",
                "callbacks=none",
                f"image={image_path}",
                "target_prompt=a blue square",
                "stage.num_steps=3",
                f"output_dir={out}",
                *extra,
            ],
        )
    )


def test_the_same_artifact_with_and_without_offload(image_path, tmp_path):
    (plain,) = _train(image_path, tmp_path / "plain")
    (offloaded,) = _train(image_path, tmp_path / "offloaded", "offload_frozen=true")
    assert plain.read_bytes() == offloaded.read_bytes()


class _Probe(Callback):
    def __init__(self) -> None:
        self.devices: list[tuple[str, str]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        model = pl_module.model
        self.devices.append(
            (
                str(next(model.text_encoder.parameters()).device),
                str(next(model.vae.parameters()).device),
            )
        )


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.text_encoder = torch.nn.Linear(2, 2).requires_grad_(False)
        self.vae = torch.nn.Linear(2, 2).requires_grad_(False)
        self.unet = torch.nn.Linear(2, 2)


class _Stage(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = _Model()


def test_frozen_parts_move_for_the_fit_and_back():
    # "meta" stands in for the CPU of a GPU run: a device the parts are not on
    stage = _Stage()
    offload = OffloadFrozen(device="meta")
    offload.on_train_start(None, stage)
    assert next(stage.model.text_encoder.parameters()).device.type == "meta"
    assert next(stage.model.vae.parameters()).device.type == "meta"
    assert next(stage.model.unet.parameters()).device.type == "cpu"  # the trained part stays
    assert len(offload.moved) == 2
    # restoring needs the weights: a meta tensor has none, so check the bookkeeping instead
    offload.moved = [(part, torch.device("meta")) for part, _ in offload.moved]
    offload.on_exception(None, stage, RuntimeError("fit failed"))
    assert offload.moved == []


def test_a_trained_part_is_never_moved():
    stage = _Stage()
    stage.model.text_encoder.requires_grad_(True)  # pretraining trains it
    offload = OffloadFrozen(device="meta")
    offload.on_train_start(None, stage)
    assert next(stage.model.text_encoder.parameters()).device.type == "cpu"
    assert [part for part, _ in offload.moved] == [stage.model.vae]


@pytest.mark.gpu
def test_offload_frees_accelerator_memory_during_the_fit(image_path, tmp_path, monkeypatch):
    from editing_app import training

    probe = _Probe()
    build = training.build_trainer

    def with_probe(*args, **kwargs):
        trainer, export, timer = build(*args, **kwargs)
        trainer.callbacks.append(probe)
        return trainer, export, timer

    monkeypatch.setattr(training, "build_trainer", with_probe)
    train(
        compose_config(
            "train",
            [
                "stage=imagic_embed",
                "base_model=tiny",
                "trainer=gpu",
                "logger=none",
                "callbacks=none",
                f"image={image_path}",
                "target_prompt=a blue square",
                "stage.num_steps=2",
                f"output_dir={tmp_path}",
                "offload_frozen=true",
            ],
        )
    )
    assert probe.devices and all(d == ("cpu", "cpu") for d in probe.devices)
