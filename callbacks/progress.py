"""The training progress bar of a stage: its steps out of the known total, under its name.

A per-image stage is one pass over an unsized stream of per-step batches (`max_epochs=1`), so
Lightning's own bar reads "Epoch 0" with an unknown total. `StageProgressBar` shows instead
`imagic_embed: 40/1000 [...]`: the stage's name and the number of batches it runs in all, from
the datamodule's `num_steps` (the stream's length) capped by the Trainer's `max_steps` (one batch
per optimizer step under automatic optimisation, and in a stage that takes one step per batch
itself). A resumed run starts the bar at the batches already done. The bar redraws at most every
`min_interval` seconds (and at the last batch), as plain tqdm does, instead of after every batch:
a redraw with its metrics costs a fraction of a millisecond, a noticeable share of a tiny model's
step.
"""

from __future__ import annotations

import math
import time

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar

__all__ = ["StageProgressBar", "stage_total_batches"]


def stage_total_batches(trainer: Trainer, pl_module: LightningModule | None = None) -> int | None:
    """The training batches the fit runs in all (None when neither bound is known)."""
    bounds = []
    stream = getattr(trainer.datamodule, "num_steps", None)
    if isinstance(stream, int) and stream >= 0:
        bounds.append(stream)
    # max_steps counts optimizer steps: batches under automatic optimisation (one step per
    # accumulation) and for stages that take one step per batch themselves.
    automatic = pl_module is None or pl_module.automatic_optimization
    if (
        (automatic or getattr(pl_module, "one_step_per_batch", False))
        and trainer.max_steps is not None
        and trainer.max_steps >= 0
    ):
        bounds.append(trainer.max_steps * max(1, trainer.accumulate_grad_batches))
    sized = trainer.num_training_batches
    if isinstance(sized, int) or (isinstance(sized, float) and not math.isinf(sized)):
        bounds.append(int(sized))
    return min(bounds) if bounds else None


class StageProgressBar(TQDMProgressBar):
    """`TQDMProgressBar` whose training bar counts the stage's batches out of their known total
    (`stage_total_batches`) and is titled with the stage's name rather than the epoch.

    Args:
        min_interval: least seconds between two redraws of the training bar.
        **kwargs: `TQDMProgressBar`'s arguments.
    """

    def __init__(self, min_interval: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_interval = float(min_interval)
        self._last_draw = -math.inf

    def _should_update(self, current: int, total: int) -> bool:
        if not super()._should_update(current, total):
            return False
        now = time.monotonic()
        if current != total and now - self._last_draw < self.min_interval:
            return False
        self._last_draw = now
        return True

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # A run resumed mid-epoch skips on_train_epoch_start: set the bar up here too.
        super().on_train_start(trainer, pl_module)
        self._set_up(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._set_up(trainer, pl_module)

    def _set_up(self, trainer: Trainer, pl_module: LightningModule) -> None:
        bar = self.train_progress_bar
        total = stage_total_batches(trainer, pl_module)
        if total is not None:
            bar.total = total
        bar.set_description(getattr(pl_module, "stage", "") or "train")
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready  # batches fetched so far
        if done and not bar.disable:
            bar.n = done
            bar.refresh()
