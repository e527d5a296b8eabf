"""Exponential moving average of model weights (what the pretraining stages export).

After optimisation step n, every averaged parameter moves towards its live value,

    p_ema <- p_ema + (1 - d_n) (p - p_ema),    d_n = min(decay, (1 + n) / (10 + n)),

the usual warm-up of the decay, so that the average forgets its random initialisation quickly.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(decay: float, step: int) -> float:
    """The warmed-up decay d_n = min(decay, (1 + n) / (10 + n)) after step n."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, live: nn.Module, decay: float) -> None:
    """Move `ema`'s parameters towards `live`'s (same architecture) by 1 - decay, in place."""
    for p_ema, p in zip(ema.parameters(), live.parameters()):
        p_ema.lerp_(p.detach(), 1 - decay)
