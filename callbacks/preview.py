"""Edit previews during training: a small edit rendered every k steps into the run's log folder."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from callbacks.time_share import TimeShare
from editing.io.atomic import atomic_file
from editing.io.grid import make_grid
from editing.io.images import to_pil


class EditPreview(Callback):
    """Every `every_n_steps` optimisation steps, save `pl_module.preview()` as a labelled grid to
    `<log_dir>/previews/step_XXXXXX.png` (rank zero; 0 disables). A per-image stage's input image
    is the grid's first cell, labelled "input".

    Args:
        every_n_steps: preview period in steps (0 = never).
        num_inference_steps: DDIM steps of the preview samples (few: previews must stay cheap).
        at_end: also render one when training ends (unless the last step has one already).
        time_share: previews take at most about this fraction of the fit's wall time
            (`callbacks.time_share.TimeShare`: a period step whose preview would exceed it is
            skipped; the end preview obeys it too once one preview was rendered). None: every
            period step.
    """

    def __init__(
        self,
        every_n_steps: int = 250,
        num_inference_steps: int = 10,
        at_end: bool = True,
        time_share: float | None = 0.05,
    ) -> None:
        self.every_n_steps = int(every_n_steps)
        self.num_inference_steps = int(num_inference_steps)
        self.at_end = at_end
        self.budget = TimeShare(time_share) if time_share is not None else None
        self.saved: list[Path] = []
        self._last_step: int | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.budget is not None:
            self.budget.restart()
        self._last_step = None

    def _due(self) -> bool:
        return self.budget is None or self.budget.due()

    def _timed_render(self, trainer: Trainer, pl_module: LightningModule, step: int) -> None:
        start = time.perf_counter()
        self._render(trainer, pl_module, step)
        self._last_step = step
        if self.budget is not None:
            self.budget.record(time.perf_counter() - start)

    def _render(self, trainer: Trainer, pl_module: LightningModule, step: int) -> None:
        if not trainer.is_global_zero:
            return
        # Restore every submodule's own mode afterwards: frozen components stay in eval mode.
        modes = [(m, m.training) for m in pl_module.modules()]
        pl_module.eval()
        with torch.no_grad():
            panels = pl_module.preview(self.num_inference_steps)
        for module, training in modes:
            module.train(training)
        if not panels:  # nothing to show (e.g. the CLIP pretraining)
            return
        panels = _input_panel(pl_module) + list(panels)
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        grid = make_grid([to_pil(img) for _, img in panels], [label for label, _ in panels])
        path = folder / f"step_{step:06d}.png"
        with atomic_file(path, "preview") as tmp:
            grid.save(tmp, format="PNG")
        self.saved.append(path)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        step = trainer.fit_loop.epoch_loop._batches_that_stepped
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0 and self._due():
            self._timed_render(trainer, pl_module, step)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        step = trainer.fit_loop.epoch_loop._batches_that_stepped
        if self.every_n_steps <= 0 or not self.at_end or step == self._last_step:
            return
        first = self.budget is None or self.budget.runs == 0
        if first or self._due():
            self._timed_render(trainer, pl_module, step)


def _input_panel(pl_module: LightningModule) -> list[tuple[str, torch.Tensor]]:
    """[("input", image [3, H, W])] for a stage that edits one image, else []."""
    inputs = getattr(pl_module, "inputs", None)
    image = getattr(inputs, "image", None)
    if image is None:
        return []
    return [("input", image.pixels[0].detach().float().cpu())]
