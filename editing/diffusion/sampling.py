"""Guided DDIM sampling from fresh noise: the generation loop shared by Imagic and previews."""

from __future__ import annotations

import torch
from torch import Tensor

from editing.diffusion.cfg import guided_eps
from editing.diffusion.ddim import ddim_step, eps_from_x0, make_schedule, predict_x0


def initial_noise(seeds: list[int], shape: tuple[int, ...], device: torch.device | str) -> Tensor:
    """x_T [len(seeds), *shape]: one N(0, I) draw per seed from a CPU generator, so a seed gives
    the same x_T whatever the batch it is sampled in and whatever the device."""
    draws = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(draws).to(device)


@torch.no_grad()
def sample(
    model,
    cond: Tensor,
    x_T: Tensor,
    num_inference_steps: int,
    guidance_scale: float,
    uncond: Tensor | None = None,
    progress: bool = False,
    clip_x0: bool = False,
) -> Tensor:
    """Classifier-free-guided deterministic DDIM sampling (DDIM eq. 12, sigma = 0).

    Args:
        model: a `DiffusionModel`.
        cond: [B, L, D] text embeddings, one per sample.
        x_T: [B, C, h, w] initial noise.
        uncond: [1, L, D] unconditional embedding (default: the embedding of "").
        clip_x0: clip the predicted x0 to [-1, 1] at every step and use the eps consistent with it
            (diffusers' `clip_sample`; pixel super-resolution stages need it: near the terminal
            level x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t) multiplies eps errors by 1 / sqrt(a_t)).
    Returns:
        [B, C, h, w] final samples x_0 (latents for latent models; decode with `model.decode`).
    """
    from tqdm.auto import tqdm

    if uncond is None:
        uncond = model.encode_prompt([""])
    schedule = make_schedule(model.scheduler, num_inference_steps).to(x_T.device)
    x = x_T
    steps = schedule.sampling()
    if progress:
        steps = tqdm(list(steps), desc="sampling", leave=False)
    # 1. Denoise step by step: guided eps at t_i, then the DDIM update to the next level.
    for _, t, a_t, a_prev in steps:
        eps = guided_eps(model, x, t, cond, uncond, guidance_scale)
        if clip_x0:
            eps = eps_from_x0(x, predict_x0(x, eps, a_t).clamp(-1, 1), a_t)
        x = ddim_step(x, eps, a_t, a_prev)
    return x
