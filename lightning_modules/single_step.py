"""One optimiser step per batch, taken by the stage itself (Lightning's manual optimisation).

A stage whose step is one loss, one backward pass and one optimiser step gains nothing from
Lightning's automatic optimisation but its cost: a closure object, the zero-grad and step hooks
and their result bookkeeping around every step, about a millisecond of CPU per step on one
thread, a noticeable share of a small model's step. `SingleStepOptimization.step_on(loss)` takes
the same step in the same order as automatic optimisation does (zero the gradients, set to None;
backward; optimiser step) through Lightning's own `manual_backward` and `LightningOptimizer`, so
the Trainer's precision plugin acts as before (16-mixed scales the loss, unscales the gradients
and skips steps with inf/NaN gradients; autocast of the forward pass is the training step's
context either way), the callbacks' backward and optimiser-step hooks still run, and the global
step counts the optimiser steps as before (checkpoints, resume, logging).

Gradient clipping (`trainer.gradient_clip_val`) and accumulation
(`trainer.accumulate_grad_batches`) are implemented by Lightning's automatic optimisation only:
under a Trainer that asks for either, `automatic_optimization` is True and the stage's
`training_step` returns its loss to it, as it did before.
"""

from __future__ import annotations

from typing import ClassVar

from lightning.pytorch import LightningModule, Trainer
from torch import Tensor


def shapes_gradients(trainer: Trainer) -> bool:
    """Whether the Trainer clips or accumulates gradients (what only automatic optimisation does)."""
    clip = trainer.gradient_clip_val
    return (clip is not None and float(clip) > 0) or int(trainer.accumulate_grad_batches) != 1


class SingleStepOptimization(LightningModule):
    """Mixin of a stage that takes exactly one optimiser step per batch (see the module
    docstring): its `training_step` computes the loss and returns `self.step_on(loss)`."""

    # One optimiser step per training batch: the Trainer's max_steps bounds the batches too
    # (`callbacks.progress.stage_total_batches`).
    one_step_per_batch: ClassVar[bool] = True

    @property
    def automatic_optimization(self) -> bool:
        trainer = self._trainer
        return trainer is not None and shapes_gradients(trainer)

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:
        raise AttributeError(
            f"{type(self).__name__} chooses its optimisation from the Trainer's settings"
        )

    def step_on(self, loss: Tensor) -> Tensor:
        """Under manual optimisation: zero the gradients, backward `loss`, step the optimiser.
        Returns `loss` (automatic optimisation takes its step from it)."""
        if not self.automatic_optimization:
            optimizer = self.optimizers()
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()
        return loss
