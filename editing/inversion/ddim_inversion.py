"""The project's one inversion of a real image: DDIM inversion under one text condition.

    z*_0 = E(x) (posterior mean)   ->   z*_{k+1} = DDIM(z*_k, eps_theta(z*_k, t, C))   (w = 1)

run through the schedule the edit will sample with (`editing.diffusion.ddim.ddim_invert`; Mokady et
al. 2023 eq. 2 and Sec. 3.1). It is null-text inversion's pivot (C = the source caption), Direct
Inversion's recorded inversion (C = "" in the reference, or the source caption) and the plain DDIM /
negative-prompt baselines of Prompt-to-Prompt editing. The result is an
`editing.diffusion.ddim.Inversion` holding x_T, the trajectory and the recorded eps.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from editing.diffusion.conditioning import Conditioning
from editing.diffusion.ddim import DDIMSchedule, Inversion, ddim_invert


@torch.no_grad()
def invert(
    model,
    z0: Tensor,
    cond: Tensor | Conditioning,
    schedule: DDIMSchedule,
    prompt: str = "",
    progress: bool = False,
) -> Inversion:
    """DDIM inversion of z0 [1, C, h, w] conditioned on one text condition cond ([1, L, D] or a `Conditioning`), no
    guidance (w = 1), recording the trajectory and eps at every step.

    Args:
        model: a `DiffusionModel` (`model.eps` normalises any prediction type to eps).
        schedule: the N-step schedule; moved to z0's device.
        prompt: the text `cond` encodes (kept on the result).
    """
    schedule = schedule.to(z0.device)
    emb = cond.to(z0.device)
    inversion = ddim_invert(z0, lambda x, t: model.eps(x, t, emb), schedule, progress=progress)
    return replace(inversion, prompt=prompt)
