"""torch's own CUDA availability check during a fit, not the NVML-based one Lightning switches on.

Importing Lightning sets `PYTORCH_NVML_BASED_CUDA_CHECK=1` for the whole process, so that
`torch.cuda.is_available()` counts devices through NVML instead of initialising CUDA: a process
that has not initialised CUDA can still fork workers that use it. The price is paid on every
call, and PyTorch's optimisers make one in every `step()` (their graph-capture health check asks
for the current accelerator): on the development machine (no NVML library) a call took 28 us
against 0.5 us, and an Adam step over one small tensor 0.18 ms against 0.05 ms, about 2 % of the
tiny model's Imagic embedding step; NVML's device query on a GPU machine costs likewise on every
step.

The stages fork nothing that uses CUDA (the data stream runs in the training process, DDP starts
its ranks as fresh processes), so once the Trainer exists `use_torch_cuda_check` removes the
variable again, unless it was set before this module was first imported (the user's own choice,
kept; the entry points import the application layer before Lightning) or the Trainer's strategy
forks its ranks (`ddp_fork`, `ddp_notebook`), which is what the NVML check is for.
"""

from __future__ import annotations

import os

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"

SETTING_AT_START = os.environ.get(NVML_CHECK)
"""The variable as it was when the application layer was first imported (None: not set)."""


def strategy_forks(trainer) -> bool:
    """Whether the Trainer's strategy starts its processes with `fork` (ddp_fork, ddp_notebook)."""
    launcher = getattr(trainer.strategy, "launcher", None)
    return getattr(launcher, "_start_method", None) == "fork"


def use_torch_cuda_check(trainer) -> bool:
    """Remove Lightning's `PYTORCH_NVML_BASED_CUDA_CHECK=1` for the fit of `trainer` (see the
    module docstring); returns whether it was removed. Kept when `SETTING_AT_START` is not None
    (set before Lightning was imported) or the strategy forks."""
    if SETTING_AT_START is not None or strategy_forks(trainer):
        return False
    return os.environ.pop(NVML_CHECK, None) is not None
