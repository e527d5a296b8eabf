"""Resume checkpoints whose writing is held to a share of the training time.

`BudgetedCheckpoint` is Lightning's `ModelCheckpoint` (last.ckpt every `every_n_train_steps`,
written atomically by `callbacks.atomic_checkpoint`) with one more condition: a candidate step
saves only when `callbacks.time_share.TimeShare` says the time spent writing checkpoints stays
within `time_share` of the fit (`callbacks.checkpoint_time_share`, 5 % by default; null saves at
every candidate step). A checkpoint holds only what is trained (`StageModule.on_save_checkpoint`)
and the optimiser state; before the first save its cost is estimated from those bytes at
`ASSUMED_BYTES_PER_SECOND`, afterwards the last save's measured time is used. So a tiny model
checkpoints every 100 steps, while an SD 1.5 full fine-tune (UNet 3.4 GB + Adam 6.9 GB) saves
about every c / 0.05 seconds of training (c: one save), never more than a twentieth of the run.
The end of a fit that saved nothing saves once (Lightning's `save_last`), under the same budget.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.time_share import TimeShare

ASSUMED_BYTES_PER_SECOND = 1e9


def checkpoint_bytes(trainer: Trainer, pl_module: LightningModule) -> int:
    """Bytes a checkpoint of this fit holds: trained tensors and the optimisers' state tensors."""
    total = sum(p.numel() * p.element_size() for p in pl_module.parameters() if p.requires_grad)
    for optimizer in trainer.optimizers:
        for state in optimizer.state.values():
            total += sum(
                v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor)
            )
    return total


class BudgetedCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that skips candidate steps which would exceed `time_share` of the fit.

    Args:
        time_share: fraction of the fit's wall time checkpoint writes may take (None: no limit,
            every `every_n_train_steps`).
        **kwargs: `ModelCheckpoint`'s arguments.
    """

    def __init__(self, time_share: float | None = 0.05, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = TimeShare(time_share) if time_share is not None else None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.budget is not None:
            self.budget.restart()

    def _due(self, trainer: Trainer, pl_module: LightningModule) -> bool:
        if self.budget is None:
            return True
        estimate = checkpoint_bytes(trainer, pl_module) / ASSUMED_BYTES_PER_SECOND
        # Every rank takes the same decision (rank 0's clock), or a collective save would hang.
        return bool(trainer.strategy.broadcast(self.budget.due(estimate)))

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        start = time.perf_counter()
        super()._save_checkpoint(trainer, filepath)
        if self.budget is not None:
            self.budget.record(time.perf_counter() - start)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        every = self._every_n_train_steps
        candidate = every > 0 and trainer.global_step % every == 0
        if candidate and not self._due(trainer, pl_module):
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.save_last and not self._last_checkpoint_saved and not self._due(trainer, pl_module):
            return
        super().on_train_end(trainer, pl_module)
