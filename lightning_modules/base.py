"""The thin Lightning shell shared by every per-image optimisation stage.

A stage module owns a frozen `DiffusionModel` plus the few tensors it optimises. It keeps
Lightning checkpoints small (only what is trained, never the frozen base weights) and turns its
result into a safetensors artifact (`artifact()`), which `callbacks.export.ArtifactExport` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule
from torch import Tensor

from editing.io.artifacts import model_metadata, save_artifact
from editing.io.edit_inputs import Inputs
from editing.models.diffusion_model import DiffusionModel

_OPTIMIZERS = ("adam", "adamw", "adafactor", "adam8bit")


def make_optimizer(
    name: str, params, lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Adam (the papers' choice), AdamW, Adafactor (memory saver) or 8-bit Adam (bitsandbytes)."""
    from editing.errors import UserInputError

    params = list(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            params, lr=lr, scale_parameter=False, relative_step=False, warmup_init=False
        )
    if name == "adam8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise UserInputError(
                "stage.optimizer=adam8bit needs bitsandbytes (pip install bitsandbytes, CUDA only)"
            ) from None
        return bnb.optim.Adam8bit(params, lr=lr, weight_decay=weight_decay)
    raise UserInputError(f"stage.optimizer={name!r} is not one of {', '.join(_OPTIMIZERS)}")


def log_if_due(module: LightningModule, name: str, value, prog_bar: bool = False) -> None:
    """`module.log(name, value)` only on the steps the loggers record (every
    `trainer.log_every_n_steps`, and the last one).

    A `self.log` call costs about a millisecond on CPU (result bookkeeping), which is a large part
    of a tiny model's optimisation step; values logged on other steps would be discarded anyway.
    The progress bar shows the latest recorded value.
    """
    trainer = module._trainer
    connector = getattr(trainer, "_logger_connector", None)
    if connector is None or connector.should_update_logs:
        module.log(name, value, prog_bar=prog_bar)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, floor: float = 0.1
) -> dict:
    """Linear warm-up to the base lr, then cosine decay to `floor` x lr (a Lightning scheduler dict)."""
    import math

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": scheduler, "interval": "step"}


class StageModule(LightningModule):
    """Base class of the per-image stages.

    Subclasses set `stage`, register what they optimise as parameters, and implement
    `training_step`, `configure_optimizers` and `artifact()`.
    """

    stage: ClassVar[str] = ""
    # Stages whose trained tensors are not UNet weights (one embedding, per-step null embeddings)
    # gain nothing from sharding and would export sharded parameters: they refuse FSDP.
    supports_fsdp: ClassVar[bool] = True

    def __init__(
        self, model: DiffusionModel, inputs: Inputs, num_steps: int, batch_size: int
    ) -> None:
        super().__init__()
        self.model = model
        self.inputs = inputs
        self.num_steps = int(num_steps)
        self.batch_size = int(batch_size)
        # Checkpoints hold only the trained tensors; the frozen base is reloaded on resume.
        self.strict_loading = False

    # ------------------------------------------------------------------ checkpoints and artifacts
    def _kept_keys(self) -> set[str]:
        trained = {name for name, p in self.named_parameters() if p.requires_grad}
        own_buffers = {name for name, _ in self.named_buffers() if not name.startswith("model.")}
        return trained | own_buffers

    def content_key(self) -> dict[str, str]:
        """What this stage's state is made from. A checkpoint records it; resuming with other
        content (another image, prompt, base model, seed) is refused instead of silently mixing
        old optimisation state into a new artifact. Stages add their own structural settings."""
        image = self.inputs.image
        return {
            "stage": self.stage,
            **model_metadata(self.model),
            "image_sha256": image.sha256 if image is not None else "",
            "source_prompt": self.inputs.source_prompt,
            "target_prompt": self.inputs.target_prompt,
            "seed": str(self.inputs.seed),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = self._kept_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["content_key"] = self.content_key()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from editing.errors import UserInputError

        saved, current = checkpoint.get("content_key"), self.content_key()
        if saved is None:
            raise UserInputError(
                f"the checkpoint has no content key: it is not a {self.stage} checkpoint of this version"
            )
        differences = [
            f"{k}: checkpoint has {saved.get(k)!r}, this run has {v!r}"
            for k, v in current.items()
            if saved.get(k) != v
        ]
        if differences:
            raise UserInputError(
                f"resume=true found a {self.stage} checkpoint made from other inputs "
                f"({'; '.join(differences)}): use another output_dir or drop resume=true"
            )

    def setup(self, stage: str) -> None:
        from lightning.pytorch.strategies import FSDPStrategy

        from editing.errors import UserInputError

        if not self.supports_fsdp and isinstance(self.trainer.strategy, FSDPStrategy):
            raise UserInputError(
                f"stage={self.stage} optimises a few small tensors: FSDP does not apply; "
                f"use trainer=default, gpu or ddp"
            )

    @property
    def steps_run(self) -> int:
        """Optimisation steps actually taken (0 before fitting)."""
        trainer = getattr(self, "_trainer", None)
        return int(trainer.global_step) if trainer is not None else 0

    @property
    def trainer_max_steps(self) -> int:
        """The Trainer's max_steps for this stage (-1: the data stream bounds the run)."""
        return self.num_steps

    def artifact(
        self, full_state: dict[str, Tensor] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, str]]:
        """(tensors, metadata) of this stage's result. `full_state` is the gathered state dict of
        a sharded (FSDP) run, where parameters read from the module would be shards."""
        raise NotImplementedError

    def artifact_path(self, output_dir: str | Path) -> Path:
        return Path(output_dir) / f"{self.stage}.safetensors"

    def export(self, output_dir: str | Path, full_state: dict[str, Tensor] | None = None) -> Path:
        tensors, metadata = self.artifact(full_state)
        return save_artifact(self.artifact_path(output_dir), tensors, metadata)

    def preview(self, num_inference_steps: int) -> list[tuple[str, Tensor]]:
        """(label, image [3, H, W] in [-1, 1]) pairs showing the current state; default none."""
        return []
