"""One job at a time per device, a progress report from training stages, and their cancel.

The page queues every job (train, edit) on one Gradio concurrency group per device (limit 1), and
`device_lock` holds the device for the job's whole run as well, so two sessions never share a
UNet at the same time. A training stage reports its step count through `StageReporter`, a
Lightning callback given to `editing_app.api.train`; setting the job's cancel token
(`editing_app.web.session.Session.job`) makes the callback raise `Cancelled` at the next step,
which ends the fit without an artifact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Cancelled", "StageReporter", "device_lock"]

_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def device_lock(device: str) -> threading.Lock:
    """The lock every job on `device` (`cpu`, `cuda:0`, ...) holds while it runs."""
    with _GUARD:
        return _LOCKS.setdefault(str(device), threading.Lock())


class Cancelled(Exception):
    """The user pressed Cancel before the job started or during its training stage (the message
    says which, as the page shows it after `cancelled: `)."""


def _reporter_base():
    from lightning.pytorch.callbacks import Callback

    return Callback


class StageReporter(_reporter_base()):
    """Calls `report(stage, done, total)` after every training batch of a stage and raises
    `Cancelled` once `cancel` is set (checked before and after every batch)."""

    def __init__(
        self, report: Callable[[str, int, int | None], None], cancel: threading.Event
    ) -> None:
        self.report = report
        self.cancel = cancel
        self.total: int | None = None

    def _check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("nothing was kept of the training run")

    def on_train_start(self, trainer, pl_module) -> None:
        from callbacks.progress import stage_total_batches

        self.total = stage_total_batches(trainer, pl_module)
        self._check()
        self.report(getattr(pl_module, "stage", "train"), 0, self.total)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._check()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.report(getattr(pl_module, "stage", "train"), batch_idx + 1, self.total)
        self._check()
