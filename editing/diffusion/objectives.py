"""The denoising objective shared by every training stage.

Imagic's embedding optimisation (eq. 2) and fine-tuning (eq. 3), the super-resolution fine-tune
and the demo model's pretraining all minimise the same loss,

    L(x, e, theta) = E_{t, eps} || eps - f_theta(x_t, t, e) ||^2,   x_t = sqrt(a_t) x + sqrt(1 - a_t) eps,

(DDPM's L_simple, Ho et al. 2020 eq. 14) with t ~ U{0..T-1} and fresh noise each step. For
v-prediction checkpoints the regression target is v instead of eps (the model's own training
parametrisation), which is the same loss up to a per-timestep weight.
"""

from __future__ import annotations

import torch
from torch import Tensor

from editing.diffusion.ddim import add_noise


def min_snr_weight(
    a_t: Tensor, gamma: float, prediction_type: str, floor: float | None = None
) -> Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023), per sample, for the model's own target.

    In x0 terms every target's squared error is a weighted ||x0 - x0_hat||^2: the eps loss weighs
    it by SNR(t), the v loss by SNR(t) + 1. Min-SNR-gamma makes the x0 weight min(SNR, gamma),
    i.e. min(SNR, gamma) / SNR on the eps loss and min(SNR, gamma) / (SNR + 1) on the v loss.
    `floor` lifts the x0 weight to at least `floor`: clip(SNR, floor, gamma). Near t = T, SNR
    goes to 0 (about 4e-5 on the demo's linear schedule), so without a floor the steps where
    the layout is decided barely count. a_t: [B] alpha-bar.
    """
    snr = a_t / (1 - a_t)
    clipped = torch.clamp(snr, min=floor, max=gamma)
    return clipped / (snr + 1) if prediction_type == "v_prediction" else clipped / snr


def denoising_loss(
    model,
    z0: Tensor,
    emb: Tensor,
    t: Tensor,
    noise: Tensor,
    snr_gamma: float | None = None,
    snr_floor: float | None = None,
) -> Tensor:
    """Mean denoising loss of `model` (a `DiffusionModel`) over a batch, in fp32.

    Args:
        z0: [B, C, h, w] clean samples (latents or pixels).
        emb: [B, L, D] text embeddings (kept fp32 by callers; cast inside the UNet call).
        t: [B] int64 timesteps in [0, T).
        noise: [B, C, h, w] standard normal noise.
        snr_gamma: if set, min-SNR weighting (used for pretraining, not by Imagic).
        snr_floor: with `snr_gamma`, the smallest x0 weight (`min_snr_weight`).
    """
    a_t = model.alphas_cumprod[t]
    x_t = add_noise(z0, noise, a_t)
    prediction = model.predict(x_t, t, emb)
    target = model.training_target(z0, noise, t)
    per_sample = (prediction.float() - target.float()).pow(2).mean(dim=(1, 2, 3))
    if snr_gamma is not None:
        per_sample = per_sample * min_snr_weight(a_t, snr_gamma, model.prediction_type, snr_floor)
    return per_sample.mean()
