"""Classifier-free-guided DDIM sampling from given noise (Imagic, previews, prompt following), run
through the one denoising loop (`editing.diffusion.denoise`)."""

from __future__ import annotations

import torch
from torch import Tensor

from editing.diffusion.cfg import guided_eps
from editing.diffusion.conditioning import Conditioning
from editing.diffusion.ddim import eps_from_x0, make_schedule, predict_x0
from editing.diffusion.denoise import denoise


@torch.no_grad()
def sample(
    model,
    cond: Tensor | Conditioning,
    x_T: Tensor,
    num_inference_steps: int,
    guidance_scale: float,
    uncond: Tensor | Conditioning | None = None,
    progress: bool = False,
    clip_x0: bool = False,
) -> Tensor:
    """Classifier-free-guided deterministic DDIM sampling (DDIM eq. 12, sigma = 0).

    Args:
        model: a `DiffusionModel`.
        cond: [B, L, D] text embeddings, one per sample (or a `Conditioning`: SDXL).
        x_T: [B, C, h, w] initial noise.
        uncond: [1, L, D] unconditional embedding (default: the condition of "").
        clip_x0: clip the predicted x0 to [-1, 1] at every step and use the eps consistent with it
            (diffusers' `clip_sample`; pixel super-resolution stages need it: near the terminal
            level x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t) multiplies eps errors by 1 / sqrt(a_t)).
    Returns:
        [B, C, h, w] final samples x_0 (latents for latent models; decode with `model.decode`).
    """
    if uncond is None:
        uncond = model.encode_condition([""])
    schedule = make_schedule(model.scheduler, num_inference_steps).to(x_T.device)

    def eps_fn(x: Tensor, t: Tensor, i: int) -> Tensor:
        # Guided eps at t_i (CFG eq. 6); with clip_x0 the eps consistent with the clipped x0.
        eps = guided_eps(model, x, t, cond, uncond, guidance_scale)
        if clip_x0:
            a_t = schedule.alphas[i]
            eps = eps_from_x0(x, predict_x0(x, eps, a_t).clamp(-1, 1), a_t)
        return eps

    # Denoise step by step: guided eps at t_i, then the DDIM update to the next level.
    return denoise(x_T, schedule, eps_fn, desc="sampling" if progress else None)
