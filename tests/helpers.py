"""Test helpers: compose the real Hydra configs and fit stages in-process."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")


def compose_config(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIGS, version_base=None):
        return compose(config_name=name, overrides=overrides)


def fit_stage(module, model, inputs, steps: int, precision: str = "32-true"):
    """Fit `module` for `steps` steps on the single-image datamodule, quietly, on CPU."""
    from lightning.pytorch import Trainer

    from train import build_datamodule

    dm = build_datamodule({}, module, model, inputs)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps if module.trainer_max_steps > 0 else -1,
        max_epochs=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    return module
