"""Test helpers: compose the real Hydra configs and fit stages in-process."""

from __future__ import annotations

from editing_app.configs import CONFIG_DIR, compose_config

CONFIGS = str(CONFIG_DIR)
__all__ = ["CONFIGS", "TINY_CLIP", "compose_config", "fit_stage"]

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
"""An open_clip config of a tiny CLIP (32 px images, 16-d embeddings) for `build_clip`."""


def fit_stage(module, model, inputs, steps: int, precision: str = "32-true"):
    """Fit `module` for `steps` steps on the single-image datamodule, quietly, on CPU."""
    from lightning.pytorch import Trainer

    from editing_app.training import build_datamodule

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
