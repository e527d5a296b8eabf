"""The stage progress bar counts the stage's steps out of their known total, under its name."""

from __future__ import annotations

import pytest
from helpers import compose_config
from lightning.pytorch import Trainer

from callbacks.progress import StageProgressBar
from demo_world.tiny import build_tiny_model
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing_app.training import build_datamodule, build_trainer


@pytest.fixture(autouse=True)
def _bars_on(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def _fit(stage, model, inputs, max_steps: int) -> StageProgressBar:
    bar = StageProgressBar()
    trainer = Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        max_epochs=1,
        logger=False,
        callbacks=[bar],
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(stage, datamodule=build_datamodule({}, stage, model, inputs))
    return bar


def test_bar_total_is_the_trainers_step_count(image_path):
    from lightning_modules.imagic import ImagicEmbedStage

    model = build_tiny_model()
    inputs = Inputs(image=load_image(image_path, 32), target_prompt="a cat")
    stage = ImagicEmbedStage(model, inputs, num_steps=10)
    bar = _fit(stage, model, inputs, max_steps=4).train_progress_bar
    assert (bar.total, bar.n) == (4, 4)  # max_steps caps the stage's 10 steps
    text = str(bar)
    assert text.startswith("imagic_embed") and "4/4" in text and "Epoch" not in text


def test_bar_total_of_a_manually_optimised_stage_is_its_stream(image_path):
    # null-text takes several optimizer steps per batch: the stream's length is the total
    from lightning_modules.null_text import NullTextStage

    model = build_tiny_model()
    inputs = Inputs(image=load_image(image_path, 32), source_prompt="a cat")
    stage = NullTextStage(model, inputs, num_inference_steps=3, num_inner_steps=2)
    bar = _fit(stage, model, inputs, max_steps=-1).train_progress_bar
    assert (bar.total, bar.n) == (3, 3)
    assert str(bar).startswith("null_text") and "3/3" in str(bar)


@pytest.mark.parametrize("enabled", [True, False])
def test_stage_trainers_get_the_bar_when_bars_are_enabled(tmp_path, enabled):
    cfg = compose_config(
        "train",
        ["trainer=cpu", "logger=none", "callbacks=none", f"trainer.enable_progress_bar={enabled}"],
    )
    trainer, _, _ = build_trainer(cfg, "imagic_embed", 7, tmp_path)
    bars = [c for c in trainer.callbacks if isinstance(c, StageProgressBar)]
    assert len(bars) == int(enabled) and trainer.max_steps == 7


class _StartSpy(StageProgressBar):
    """Records (n, total) of the bar as training starts."""

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self.at_start = (self.train_progress_bar.n, self.train_progress_bar.total)


def test_a_resumed_stage_starts_its_bar_at_the_steps_already_done(image_path, tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lightning_modules.imagic import ImagicEmbedStage

    model = build_tiny_model()
    inputs = Inputs(image=load_image(image_path, 32), target_prompt="a cat")

    def fit(max_steps: int, ckpt_path=None) -> _StartSpy:
        stage = ImagicEmbedStage(model, inputs, num_steps=6)
        bar = _StartSpy()
        checkpoint = ModelCheckpoint(tmp_path, "{step}", every_n_train_steps=3, save_top_k=-1)
        trainer = Trainer(
            accelerator="cpu",
            max_steps=max_steps,
            max_epochs=1,
            logger=False,
            callbacks=[bar, checkpoint],
            enable_model_summary=False,
            default_root_dir=str(tmp_path),
        )
        datamodule = build_datamodule({}, stage, model, inputs)
        trainer.fit(stage, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
        return bar

    assert fit(3).at_start == (0, 3)
    resumed = fit(6, str(tmp_path / "step=3.ckpt"))
    assert resumed.at_start == (3, 6)  # mid-epoch: Lightning skips on_train_epoch_start
    assert (resumed.train_progress_bar.n, resumed.train_progress_bar.total) == (6, 6)
