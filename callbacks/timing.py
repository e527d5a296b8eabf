"""Per-step timing and peak memory: logged, and summarised when a stage ends."""

from __future__ import annotations

import logging
import time

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from lightning_modules.base import log_if_due

log = logging.getLogger(__name__)


class StepTimer(Callback):
    """Measure wall time per optimisation step (batch start to batch end) and peak memory.

    `summary()` gives {"steps", "seconds_per_step" (median, excluding the first `warmup` steps),
    "total_seconds", "cpu_seconds" (process CPU time of the fit: robust to other load on a shared
    machine), "peak_memory_mb"} (GPU peak memory on CUDA, else max RSS of the process).
    """

    def __init__(self, warmup: int = 2) -> None:
        self.warmup = warmup
        self.times: list[float] = []
        self.ends: list[float] = []
        self._t0 = 0.0
        self._fit_t0 = 0.0
        self.total = 0.0
        self.cpu_total = 0.0
        self._fit_cpu0 = 0.0
        self._cuda = False

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.times.clear()
        self.ends.clear()
        # Synchronise only a fit that runs on a GPU (decided once, not every step).
        self._cuda = pl_module.device.type == "cuda"
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._fit_t0 = time.perf_counter()
        self._fit_cpu0 = time.process_time()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._cuda:
            torch.cuda.synchronize()
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        dt = now - self._t0
        self.times.append(dt)
        self.ends.append(now)
        log_if_due(pl_module, "step_seconds", dt)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.total = time.perf_counter() - self._fit_t0
        self.cpu_total = time.process_time() - self._fit_cpu0
        s = self.summary()
        log.info(
            "%s: %d steps, %.4f s/step (median), peak memory %.0f MB",
            getattr(pl_module, "stage", "stage"),
            s["steps"],
            s["seconds_per_step"],
            s["peak_memory_mb"],
        )

    def summary(self) -> dict[str, float]:
        """Median step time, and the mean wall time per step between the ends of consecutive
        steps after warm-up: everything a step costs (data, logging, callbacks, checkpoints,
        previews), which is what overhead measurements compare."""
        timed = self.times[self.warmup :] or self.times
        median = sorted(timed)[len(timed) // 2] if timed else float("nan")
        ends = self.ends[self.warmup :]
        wall = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else float("nan")
        return {
            "steps": len(self.times),
            "seconds_per_step": median,
            "wall_seconds_per_step": wall,
            "total_seconds": self.total,
            "cpu_seconds": self.cpu_total,
            "peak_memory_mb": peak_memory_mb(),
        }


def peak_memory_mb() -> float:
    """Peak CUDA memory allocated (MB) if on GPU, else the process's max resident set size."""
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
