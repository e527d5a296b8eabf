"""The export callback writes the stage's artifact when the fit ends, after dropping the last
step's gradients (memory the write needs: a full fine-tune's gradients are as large as its
weights)."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, Trainer

from callbacks.export import ArtifactExport
from demo_world.tiny import build_tiny_model
from editing.io.artifacts import load_artifact
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing_app.training import build_datamodule
from lightning_modules.imagic import ImagicEmbedStage


class _GradientsSeen(Callback):
    def __init__(self) -> None:
        self.seen: list[bool] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen.append(pl_module.e_opt.grad is not None)


def test_the_export_drops_the_gradients_and_writes_the_artifact(image_path, tmp_path):
    model = build_tiny_model()
    inputs = Inputs(image=load_image(image_path, 32), target_prompt="a red circle")
    stage = ImagicEmbedStage(model, inputs, num_steps=2, lr=1e-2)
    spy, export = _GradientsSeen(), ArtifactExport(tmp_path)
    trainer = Trainer(
        accelerator="cpu",
        max_steps=2,
        max_epochs=1,
        logger=False,
        callbacks=[spy, export],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(stage, datamodule=build_datamodule({}, stage, model, inputs))
    assert spy.seen == [True, True]  # the gradients are there during the fit
    assert all(p.grad is None for p in stage.parameters())
    artifact = load_artifact(export.path, "imagic_embed")
    assert torch.equal(artifact["e_opt"], stage.e_opt.detach())
