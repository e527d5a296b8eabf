"""DDPM ancestral sampling on a respaced schedule (Ho et al. 2020; Nichol & Dhariwal 2021).

Pure functions in paper notation. `a_t` is alpha-bar at a (respaced) step, `a_prev` alpha-bar of
the step before it (1 before the first step), and the one-step quantities of the respaced chain are

    beta_t  = 1 - a_t / a_prev,        alpha_t = 1 - beta_t = a_t / a_prev.

Respacing (improved DDPM Sec. 4; guided-diffusion's `space_timesteps` / `SpacedDiffusion`, the
schedule Blended Diffusion samples with): keep N of the T training timesteps, evenly spaced and
rounded, t_0 = 0 < t_1 < ... < t_{N-1} = T - 1, and give the N-step chain the betas that make its
alpha-bar equal the original alpha-bar at the kept timesteps. The UNet still receives the original
timestep t_i. Respaced step i goes from level a_i to a_{i-1} (a_{-1} = 1).

Posterior (DDPM eq. 6-7) of the respaced chain:
    mu~(x_t, x0)  = sqrt(a_prev) beta_t / (1 - a_t) x0 + sqrt(alpha_t) (1 - a_prev) / (1 - a_t) x_t
    beta~_t       = (1 - a_prev) / (1 - a_t) beta_t
and ancestral sampling draws x_{t-1} = mu~(x_t, x0_hat) + sigma_t z with sigma_t^2 = beta~_t
("fixed small", DDPM's posterior variance) or beta_t ("fixed large"), and no noise at step 0.
A model that learns its variance (improved DDPM Sec. 3.1; guided-diffusion's `learned_range`,
DeepFloyd IF) outputs v in [-1, 1] per pixel and

    log Sigma = f log beta_t + (1 - f) log beta~_t,    f = (v + 1) / 2,

with beta~ of the first step (0) replaced by that of the second (guided-diffusion's
`posterior_log_variance_clipped`): `learned_range_variance`.
The DDIM step on the same levels is `editing.diffusion.ddim.ddim_step` (reused, never re-written here).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from editing.diffusion.ddim import _bcast, _hi


def space_timesteps(num_train_timesteps: int, num_steps: int) -> Tensor:
    """The N kept timesteps [N] int64, ascending: guided-diffusion's `space_timesteps(T, [N])`.

    Evenly spaced with a fractional stride (T - 1) / (N - 1), each rounded to the nearest integer,
    so the first is 0 and the last T - 1 (e.g. T = 1000, N = 100: 0, 10, 20, ..., 50, 61, ..., 999).
    """
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"num_steps must be in [1, {num_train_timesteps}], got {num_steps}")
    if num_steps == 1:
        return torch.zeros(1, dtype=torch.int64)
    stride = (num_train_timesteps - 1) / (num_steps - 1)
    taken, position = [], 0.0
    for _ in range(num_steps):  # accumulated (not i * stride) and rounded half-to-even, as there
        taken.append(round(position))
        position += stride
    return torch.tensor(taken, dtype=torch.int64)


@dataclass(frozen=True)
class DDPMSchedule:
    """A respaced N-step DDPM chain.

    Attributes:
        timesteps: [N] int64 ascending: the original timestep t_i the UNet sees at respaced step i.
        alphas_cumprod: [N] float64: a_i = alpha-bar(t_i) of the original schedule.
        alphas_cumprod_prev: [N] float64: a_{i-1}, with a_{-1} = 1.
    """

    timesteps: Tensor
    alphas_cumprod: Tensor
    alphas_cumprod_prev: Tensor

    def __len__(self) -> int:
        return int(self.timesteps.numel())

    @property
    def betas(self) -> Tensor:
        """[N] the respaced betas 1 - a_i / a_{i-1} (guided-diffusion's `SpacedDiffusion`)."""
        return 1.0 - self.alphas_cumprod / self.alphas_cumprod_prev

    def sampling(self) -> Iterator[tuple[int, Tensor, Tensor, Tensor]]:
        """(j, t, a_t, a_prev) in sampling order, j = 0 .. N-1 from the noisiest step: sampling
        step j is respaced step N - 1 - j (`editing.diffusion.denoise.denoise` runs this)."""
        n = len(self)
        for j in range(n):
            yield (j, *self.level(n - 1 - j))

    def level(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        """(t_i, a_i, a_{i-1}) of respaced step i."""
        return self.timesteps[i], self.alphas_cumprod[i], self.alphas_cumprod_prev[i]

    def log_posterior_variance_clipped(self, i: int) -> Tensor:
        """log beta~_i, with beta~_0 = 0 replaced by beta~_1 (guided-diffusion's clipping; a
        one-step chain uses log beta_0): the lower end of the learned variance range."""
        if i == 0:
            if len(self) == 1:
                return torch.log(self.betas[0])
            i = 1
        return torch.log(posterior_variance(self.alphas_cumprod[i], self.alphas_cumprod_prev[i]))

    def to(self, device: torch.device | str) -> DDPMSchedule:
        return DDPMSchedule(
            self.timesteps.to(device),
            self.alphas_cumprod.to(device),
            self.alphas_cumprod_prev.to(device),
        )


def respace(alphas_cumprod: Tensor, timesteps: Tensor) -> DDPMSchedule:
    """The chain over `timesteps` (ascending) of a model trained with `alphas_cumprod` [T]."""
    timesteps = torch.as_tensor(timesteps, dtype=torch.int64).cpu()
    if timesteps.numel() > 1 and not bool((timesteps[1:] > timesteps[:-1]).all()):
        raise ValueError("respaced timesteps must be strictly increasing")
    a = alphas_cumprod.detach().cpu().to(torch.float64)[timesteps]
    a_prev = torch.cat([torch.ones(1, dtype=torch.float64), a[:-1]])
    return DDPMSchedule(timesteps=timesteps, alphas_cumprod=a, alphas_cumprod_prev=a_prev)


def make_ddpm_schedule(alphas_cumprod: Tensor, num_steps: int) -> DDPMSchedule:
    """`respace(alphas_cumprod, space_timesteps(T, num_steps))`: the usual N-step chain."""
    return respace(alphas_cumprod, space_timesteps(int(alphas_cumprod.numel()), num_steps))


def posterior_mean(x0: Tensor, x_t: Tensor, a_t: Tensor | float, a_prev: Tensor | float) -> Tensor:
    """mu~(x_t, x0) of q(x_{t-1} | x_t, x0) (DDPM eq. 7). Shapes [B, C, H, W]; fp32 or more."""
    a, ap = _bcast(a_t, x_t), _bcast(a_prev, x_t)
    beta = 1.0 - a / ap
    coef_x0 = ap.sqrt() * beta / (1.0 - a)
    coef_xt = (1.0 - beta).sqrt() * (1.0 - ap) / (1.0 - a)
    return coef_x0 * _hi(x0) + coef_xt * _hi(x_t)


def posterior_variance(a_t: Tensor | float, a_prev: Tensor | float) -> Tensor:
    """beta~_t = (1 - a_prev) / (1 - a_t) * beta_t (DDPM eq. 7); 0 at the first step (a_prev = 1)."""
    a, ap = torch.as_tensor(a_t, dtype=torch.float64), torch.as_tensor(a_prev, dtype=torch.float64)
    return (1.0 - ap) / (1.0 - a) * (1.0 - a / ap)


def model_variance(a_t: Tensor | float, a_prev: Tensor | float, kind: str = "small") -> Tensor:
    """sigma_t^2 of ancestral sampling: "small" = beta~_t (posterior), "large" = beta_t (DDPM Sec. 3.2)."""
    if kind == "small":
        return posterior_variance(a_t, a_prev)
    if kind == "large":
        a, ap = (
            torch.as_tensor(a_t, dtype=torch.float64),
            torch.as_tensor(a_prev, dtype=torch.float64),
        )
        return 1.0 - a / ap
    raise ValueError(f"variance must be 'small' or 'large', got {kind!r}")


def learned_range_variance(v: Tensor, log_beta: Tensor, log_beta_tilde: Tensor) -> Tensor:
    """Sigma = exp(f log beta + (1 - f) log beta~), f = (v + 1) / 2 (improved DDPM eq. 15,
    guided-diffusion's `learned_range`): v [B, C, H, W] the model's variance output; fp64."""
    f = (v.to(torch.float64) + 1.0) / 2.0
    log_beta = torch.as_tensor(log_beta, dtype=torch.float64, device=v.device)
    log_beta_tilde = torch.as_tensor(log_beta_tilde, dtype=torch.float64, device=v.device)
    return torch.exp(f * log_beta + (1.0 - f) * log_beta_tilde)


def ddpm_sample(mean: Tensor, variance: Tensor | float, noise: Tensor, last: bool) -> Tensor:
    """x_{t-1} = mean + sigma_t z, z = `noise` (DDPM Algorithm 2, line 4); no noise when `last`."""
    if last:
        return mean
    return mean + _bcast(variance, mean).sqrt() * _hi(noise)
