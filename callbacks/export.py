"""Artifact export at the end of a stage (global rank zero only; atomic write)."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger(__name__)


class ArtifactExport(Callback):
    """Call `pl_module.export(output_dir, full_state)` when training ends (every stage implements
    `lightning_modules.base.Stage`); `path` is where it wrote.

    The last step's gradients are dropped first: the fit is over, nothing reads them again, and
    a full fine-tune's gradients are as large as its weights (3.4 GB for SD 1.5 in fp32), memory
    that writing the artifact needs."""

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)
        self.path: Path | None = None

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from lightning.pytorch.strategies import FSDPStrategy

        pl_module.zero_grad(set_to_none=True)
        full_state = None
        if isinstance(trainer.strategy, FSDPStrategy):
            # Sharded weights: every rank takes part in gathering them; rank 0 receives them.
            full_state = trainer.strategy.lightning_module_state_dict()
        if trainer.is_global_zero:
            self.path = pl_module.export(self.output_dir, full_state)
            log.info("wrote %s", self.path)
        trainer.strategy.barrier("artifact-export")
