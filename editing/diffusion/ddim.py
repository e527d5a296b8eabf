"""DDIM sampling and inversion maths (Song et al. 2021), one pure function each.

Notation follows the papers: `a_t` is alpha-bar at timestep t (the cumulative product of
1 - beta), `x_t` the noisy sample (pixels or latents), `eps` the noise prediction.

Forward process (DDPM eq. 4):   x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps
Predicted clean sample (DDIM eq. 12, first term):   x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)
Deterministic DDIM step (eq. 12 with sigma = 0):   x_s = sqrt(a_s) x0_hat + sqrt(1 - a_s) eps

The same map sends x_t to a *less* noisy level s < t (sampling) or to a *more* noisy level s > t
(inversion, Mokady et al. 2023 eq. 2 / Dhariwal & Nichol 2021 App. F), which is why one function
serves both.

Timestep alignment, made explicit by `DDIMSchedule`: a schedule of N steps has timesteps
t_N > ... > t_1 (sampling order, `timesteps[0] = t_N`) and N + 1 noise levels
a(t_N), ..., a(t_1), a_final, where a_final is alpha-bar "before" t_1 (1 with
`set_alpha_to_one`, else alphas_cumprod[0] as in Stable Diffusion). Sampling step i goes from level
`alphas[i]` to `alphas_prev[i]` with eps evaluated at `timesteps[i]`; inversion step i is the same
step run backwards, from `alphas_prev[i]` to `alphas[i]` with eps evaluated at `timesteps[i]` on the
less noisy sample (the standard approximation eps(x_{t-1}, t) ~ eps(x_t, t)). Inverting then sampling
therefore visits exactly the same levels with the same timestep labels: the classic off-by-one
between the two (diffusers PRs #3436, #5145, #10695) cannot happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from editing.diffusion.conditioning import Conditioning

EpsFn = Callable[[Tensor, Tensor], Tensor]
"""eps_theta(x_t, t): the (guided) noise prediction for sample x_t at integer timestep t."""


def _hi(x: Tensor) -> Tensor:
    """x in at least fp32 (fp16/bf16 samples are upcast for the maths; fp64 stays fp64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _bcast(a: Tensor | float, like: Tensor) -> Tensor:
    """alpha-bar as a tensor broadcastable against `like` ([B] -> [B, 1, 1, 1])."""
    dtype = torch.promote_types(like.dtype, torch.float32)
    a = torch.as_tensor(a, device=like.device).to(dtype)
    while a.dim() < like.dim():
        a = a.unsqueeze(-1)
    return a


def add_noise(x0: Tensor, noise: Tensor, a_t: Tensor | float) -> Tensor:
    """q(x_t | x_0) sample: sqrt(a_t) x0 + sqrt(1 - a_t) noise (DDPM eq. 4). Shapes [B, C, H, W]."""
    a = _bcast(a_t, x0)
    return (a.sqrt() * _hi(x0) + (1 - a).sqrt() * _hi(noise)).to(x0.dtype)


def predict_x0(x_t: Tensor, eps: Tensor, a_t: Tensor | float) -> Tensor:
    """x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t) (DDIM eq. 12, "predicted x0")."""
    a = _bcast(a_t, x_t)
    return (_hi(x_t) - (1 - a).sqrt() * _hi(eps)) / a.sqrt()


def eps_from_x0(x_t: Tensor, x0: Tensor, a_t: Tensor | float) -> Tensor:
    """The noise that maps x0 to x_t at level a_t: (x_t - sqrt(a_t) x0) / sqrt(1 - a_t)."""
    a = _bcast(a_t, x_t)
    return (_hi(x_t) - a.sqrt() * _hi(x0)) / (1 - a).sqrt()


def eps_from_v(v: Tensor, x_t: Tensor, a_t: Tensor | float) -> Tensor:
    """eps from a v-prediction (Salimans & Ho 2022): eps = sqrt(a_t) v + sqrt(1 - a_t) x_t."""
    a = _bcast(a_t, x_t)
    return a.sqrt() * _hi(v) + (1 - a).sqrt() * _hi(x_t)


def v_target(x0: Tensor, noise: Tensor, a_t: Tensor | float) -> Tensor:
    """The v-prediction training target: v = sqrt(a_t) eps - sqrt(1 - a_t) x0."""
    a = _bcast(a_t, x0)
    return a.sqrt() * _hi(noise) - (1 - a).sqrt() * _hi(x0)


def ddim_step(x_t: Tensor, eps: Tensor, a_t: Tensor | float, a_s: Tensor | float) -> Tensor:
    """Deterministic DDIM step from level a_t to level a_s (DDIM eq. 12, sigma = 0).

    x_s = sqrt(a_s) x0_hat + sqrt(1 - a_s) eps, with x0_hat = predict_x0(x_t, eps, a_t).
    a_s > a_t samples (less noise); a_s < a_t inverts (more noise). Computed in fp32; returns
    x_t's dtype. Shapes: x_t, eps [B, C, H, W]; a_t, a_s scalars or [B].
    """
    x0_hat = predict_x0(x_t, eps, a_t)
    a_s_ = _bcast(a_s, x_t)
    x_s = a_s_.sqrt() * x0_hat + (1 - a_s_).sqrt() * _hi(eps)
    return x_s.to(x_t.dtype)


@dataclass(frozen=True)
class DDIMSchedule:
    """The N timesteps of a DDIM run and the N + 1 noise levels they connect.

    Attributes:
        timesteps: [N] int64, descending (sampling order): timesteps[i] labels sampling step i.
        alphas: [N] alpha-bar at timesteps[i] (the level sampling step i starts from).
        alphas_prev: [N] the level sampling step i ends at: alphas[i + 1], and a_final for the last.
    """

    timesteps: Tensor
    alphas: Tensor
    alphas_prev: Tensor

    def __len__(self) -> int:
        return int(self.timesteps.numel())

    def sampling(self) -> Iterator[tuple[int, Tensor, Tensor, Tensor]]:
        """(i, t, a_t, a_prev) for sampling steps i = 0 .. N-1 (from pure noise to clean)."""
        for i in range(len(self)):
            yield i, self.timesteps[i], self.alphas[i], self.alphas_prev[i]

    def inversion(self) -> Iterator[tuple[int, Tensor, Tensor, Tensor]]:
        """(i, t, a_from, a_to) for inversion, from clean to noise: i = N-1 .. 0.

        Inversion step i undoes sampling step i: it goes from alphas_prev[i] to alphas[i] and
        evaluates eps at timesteps[i].
        """
        for i in reversed(range(len(self))):
            yield i, self.timesteps[i], self.alphas_prev[i], self.alphas[i]

    def to(self, device: torch.device | str) -> DDIMSchedule:
        return DDIMSchedule(
            self.timesteps.to(device), self.alphas.to(device), self.alphas_prev.to(device)
        )


def make_schedule(scheduler, num_inference_steps: int) -> DDIMSchedule:
    """The DDIM schedule of a diffusers scheduler (its spacing, offset and final alpha).

    Uses the scheduler's own `set_timesteps` so that "leading"/"trailing" spacing and `steps_offset`
    match the checkpoint's convention, and takes the final level from `set_alpha_to_one`
    (Stable Diffusion: False, so a_final = alphas_cumprod[0]).
    """
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
    scheduler.set_timesteps(num_inference_steps)
    timesteps = scheduler.timesteps.to(torch.int64).clone()
    alphas_cumprod = scheduler.alphas_cumprod.to(torch.float32)
    set_alpha_to_one = bool(getattr(scheduler.config, "set_alpha_to_one", False))
    a_final = torch.tensor(1.0) if set_alpha_to_one else alphas_cumprod[0]
    alphas = alphas_cumprod[timesteps]
    alphas_prev = torch.cat([alphas[1:], a_final.reshape(1)])
    return DDIMSchedule(timesteps=timesteps, alphas=alphas, alphas_prev=alphas_prev)


@dataclass
class Inversion:
    """A DDIM inversion of one image and what an edit needs from it: the one result type of every
    inversion in the project (plain DDIM, recorded for Direct Inversion, null-text optimised).

    Attributes:
        x_T: [B, C, h, w] the end point z*_N of the inversion.
        schedule: the N-step schedule it inverted through (and that sampling from x_T uses).
        eps: [N, B, C, h, w] or None: the noise prediction of each inversion step in *sampling*
            order: eps[i] was evaluated at timesteps[i] (Direct Inversion's eps_inv, re-indexed so
            that sampling step i uses eps[i]).
        latents: [N + 1, B, C, h, w] or None: z*_0 (the clean input) .. z*_N, i.e. latents[k] is
            the sample after k inversion steps (the null-text pivot trajectory). Sampling step i
            starts from latents[N - i] and ideally lands on latents[N - i - 1].
        uncond: [N or 1, L, D] or None: the unconditional embeddings to sample with (null-text
            inversion: one optimised embedding per step; negative-prompt inversion: the source
            embedding); None means the embedding of "". On SDXL a `Conditioning` of those tokens
            and their pooled embeddings [N or 1, P].
        prompt: the text the inversion was conditioned on.
        guidance_scale: the classifier-free guidance weight sampling from x_T should use (1: the
            plain inversion's own, unguided trajectory).
        diagnostics: per-step figures of an optimised inversion (null-text: inner_steps, losses).
    """

    x_T: Tensor
    schedule: DDIMSchedule
    eps: Tensor | None = None
    latents: Tensor | None = None
    uncond: Tensor | Conditioning | None = None
    prompt: str = ""
    guidance_scale: float = 1.0
    diagnostics: dict[str, Tensor] = field(default_factory=dict)

    @property
    def timesteps(self) -> Tensor:
        return self.schedule.timesteps

    def __len__(self) -> int:
        return len(self.schedule)

    def target(self, i: int) -> Tensor:
        """z*_{t-1} for sampling step i: the pivot the null-text optimisation fits at that step."""
        if self.latents is None:
            raise ValueError("this inversion kept no trajectory (latents)")
        return self.latents[len(self.latents) - 2 - i]

    def to(self, device: torch.device | str) -> Inversion:
        def move(x: Tensor | Conditioning | None) -> Tensor | Conditioning | None:
            return None if x is None else x.to(device)

        return replace(
            self,
            x_T=self.x_T.to(device),
            schedule=self.schedule.to(device),
            eps=move(self.eps),
            latents=move(self.latents),
            uncond=move(self.uncond),
        )


@torch.no_grad()
def ddim_invert(
    z0: Tensor, eps_fn: EpsFn, schedule: DDIMSchedule, progress: bool = False
) -> Inversion:
    """DDIM inversion of z0 (Mokady et al. eq. 2): run the DDIM map towards more noise.

    Args:
        z0: [B, C, H, W] clean sample (latents or pixels).
        eps_fn: eps_theta(x, t), e.g. the conditional prediction for the inversion prompt.
        schedule: the schedule the edit will later sample with.
    Returns:
        An `Inversion` with x_T, the trajectory (latents) and the recorded eps.
    """
    from tqdm.auto import tqdm

    latents = [z0]
    eps_list: list[Tensor] = [torch.empty(0)] * len(schedule)
    x = z0
    steps = schedule.inversion()
    if progress:
        steps = tqdm(list(steps), desc="DDIM inversion", leave=False)
    for i, t, a_from, a_to in steps:
        eps = eps_fn(x, t)
        x = ddim_step(x, eps, a_from, a_to)
        latents.append(x)
        eps_list[i] = eps
    return Inversion(
        x_T=x, schedule=schedule, eps=torch.stack(eps_list), latents=torch.stack(latents)
    )
