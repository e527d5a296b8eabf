"""The denoising loop every sampler of the project runs (DDIM eq. 12; DDPM Algorithm 2).

One explicit loop over the steps of a schedule, from the noisiest level to the clean one. Each
method plugs into it, never copies it:

    for i, t, a_t, a_prev in schedule.sampling():      (i = 0 is the noisiest step)
        1. before_step(i, t)                 bookkeeping before the UNet call: Prompt-to-Prompt's
                                             controller clock, pixel Blended's per-step noise draws
        2. prediction = eps_fn(x, t, i)      the (guided) noise prediction: classifier-free
                                             guidance, Direct Inversion's noise merge, Blended's CLIP
                                             gradient (a method may return a richer prediction that
                                             its own `update` reads)
        3. x = update(x, prediction, i, a_t, a_prev)
                                             the step to the next level: by default the
                                             deterministic DDIM step (`editing.diffusion.ddim.ddim_step`);
                                             pixel Blended's guided DDPM posterior sample
        4. x = after_step(x, i)              what a method does to the new sample: Blended and Blended
                                             Latent's blend with the noised source, LocalBlend

Who plugs what (see each editor's module docstring for its equations):
- Imagic, previews, prompt following: `editing.diffusion.sampling.sample` (eps_fn = CFG);
- Prompt-to-Prompt (`editing.editors.p2p_sampling`): before_step = controller clock, eps_fn =
  batched CFG under attention control, after_step = LocalBlend;
- Direct Inversion: eps_fn = CFG merged with the inverted noise;
- Blended Latent Diffusion: eps_fn = CFG, after_step = latent blend;
- Blended Diffusion (pixel): before_step = noise draws, eps_fn = CLIP guidance, update = guided DDPM
  or DDIM step, after_step = pixel blend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from torch import Tensor

from editing.diffusion.ddim import DDIMSchedule, EpsFn, ddim_step


class SamplingSchedule(Protocol):
    """A schedule the loop can run: `sampling()` yields (i, t, a_t, a_prev) from noisiest to clean
    (`editing.diffusion.ddim.DDIMSchedule`, `editing.diffusion.ddpm.DDPMSchedule`)."""

    def sampling(self) -> Iterable[tuple[int, Tensor, Tensor, Tensor]]: ...

    def __len__(self) -> int: ...


EpsFunction = Callable[[Tensor, Tensor, int], Any]
"""eps_fn(x_t [B, C, h, w], t, i) -> the noise prediction at sampling step i."""
Update = Callable[[Tensor, Any, int, Tensor, Tensor], Tensor]
"""update(x_t, prediction, i, a_t, a_prev) -> x_prev."""


def ddim_update(x_t: Tensor, eps: Tensor, i: int, a_t: Tensor, a_prev: Tensor) -> Tensor:
    """The default update: the deterministic DDIM step from level a_t to a_prev (DDIM eq. 12)."""
    return ddim_step(x_t, eps, a_t, a_prev)


def denoise(
    x_T: Tensor,
    schedule: SamplingSchedule,
    eps_fn: EpsFunction,
    *,
    update: Update = ddim_update,
    before_step: Callable[[int, Tensor], None] | None = None,
    after_step: Callable[[Tensor, int], Tensor] | None = None,
    start: int = 0,
    desc: str | None = None,
) -> Tensor:
    """Run sampling steps `start` .. len(schedule) - 1 from x_T; returns the final sample.

    Args:
        x_T: [B, C, h, w] the sample at the level of step `start` (noise, an inversion's z_T, or a
            noised source).
        schedule: the steps and noise levels (sampling order).
        eps_fn, update, before_step, after_step: the method's parts (module docstring).
        start: the first step run (Blended and Blended Latent skip the noisiest steps).
        desc: a progress-bar label; None shows no bar.
    Returns:
        [B, C, h, w] the sample after the last step (latents for latent models).
    """
    steps = [step for step in schedule.sampling() if step[0] >= start]
    if desc is not None:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=desc, leave=False)
    x = x_T
    for i, t, a_t, a_prev in steps:
        if before_step is not None:
            before_step(i, t)
        prediction = eps_fn(x, t, i)
        x = update(x, prediction, i, a_t, a_prev)
        if after_step is not None:
            x = after_step(x, i)
    return x


def ddim_sample(
    x_T: Tensor, eps_fn: EpsFn, schedule: DDIMSchedule, progress: bool = False
) -> Tensor:
    """Deterministic DDIM sampling from x_T through every step of `schedule` with eps_fn(x, t);
    returns x_0 (the inverse of `editing.diffusion.ddim.ddim_invert` on the same schedule)."""
    return denoise(
        x_T,
        schedule,
        lambda x, t, i: eps_fn(x, t),
        desc="DDIM sampling" if progress else None,
    )
