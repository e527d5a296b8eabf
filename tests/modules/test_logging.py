"""Per-step metrics reach the loggers on every logging step, and only there."""

from __future__ import annotations

import csv

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger

from callbacks.timing import StepTimer
from demo_world.tiny import build_tiny_model
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing_app.training import build_datamodule
from lightning_modules.imagic import ImagicEmbedStage


def test_loss_and_step_time_are_logged_every_n_steps(image_path, tmp_path):
    model = build_tiny_model()
    inputs = Inputs(image=load_image(image_path, 32), target_prompt="a cat")
    stage = ImagicEmbedStage(model, inputs, num_steps=10)
    logger = CSVLogger(tmp_path, name="run")
    trainer = Trainer(
        accelerator="cpu",
        max_steps=10,
        max_epochs=1,
        log_every_n_steps=4,
        logger=logger,
        callbacks=[StepTimer()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(stage, datamodule=build_datamodule({}, stage, model, inputs))
    with open(logger.log_dir + "/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows if r.get("loss")] == [3, 7]
    assert [int(r["step"]) for r in rows if r.get("step_seconds")] == [3, 7]
    assert all(float(r["loss"]) > 0 for r in rows if r.get("loss"))
