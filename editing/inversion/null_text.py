"""Null-text inversion (Mokady et al., CVPR 2023), the Lightning-free core.

1. Pivot: DDIM inversion of z0 with the source caption C and guidance w = 1 gives z*_0 .. z*_T
   (`editing.inversion.ddim_inversion.invert`, Sec. 3.1).
2. Null-text optimisation (Sec. 3.2, Algorithm 1) with guidance w (7.5): z_bar_T = z*_T and
   null_T = embedding of "". For sampling steps i = 0 .. N-1 (t = T .. 1):
     N_inner Adam steps on  || z*_{t-1} - DDIM(z_bar_t, eps_u(null_t) + w (eps_c - eps_u(null_t))) ||^2
     w.r.t. null_t only (eq. 3), then z_bar_{t-1} = DDIM(z_bar_t, guided eps with the optimised
     null_t), and null_{t-1} starts from null_t.
Reference-code details kept (docs/methods.md): a fresh Adam at every step with lr 1e-2 (1 - i/100),
10 inner steps, early stop when the loss < 1e-5 + i 2e-5 (checked after each update, on the loss
before it), the conditional eps computed once per step. The embedding, the loss and the optimiser
state are fp32 whatever precision the UNet runs at (fp16 fails: diffusers PR #6329).

On SDXL the unconditional branch of guidance is the pair (null tokens [1, 77, D1 + D2], null pooled
[1, P]): both enter eps_u, so both are optimised together at every step (one Adam over the two
parameters, the same loss), the size/crop time ids staying those of the working size. The
per-step result is then tokens [N, L, D] with pooled [N, P] (a `Conditioning` with batch = steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from editing.diffusion.cfg import classifier_free_guidance
from editing.diffusion.conditioning import Conditioning, cat_conditions, embedding, text_embedding
from editing.diffusion.ddim import DDIMSchedule, Inversion, ddim_step, make_schedule
from editing.inversion.ddim_inversion import invert


@dataclass(frozen=True)
class NullTextSettings:
    """Hyper-parameters of the null-text optimisation (defaults: the reference code).

    Attributes:
        num_inner_steps: N, Adam steps per timestep (10).
        guidance_scale: w of the guided trajectory being fitted (7.5).
        lr: Adam learning rate at step 0 (1e-2); step i uses lr (1 - i lr_decay).
        lr_decay: 1/100 in the reference.
        early_stop: stop a step's inner loop once loss < epsilon + i slope.
        epsilon, slope: 1e-5 and 2e-5 in the reference.
    """

    num_inner_steps: int = 10
    guidance_scale: float = 7.5
    lr: float = 1e-2
    lr_decay: float = 0.01
    early_stop: bool = True
    epsilon: float = 1e-5
    slope: float = 2e-5

    def lr_at(self, i: int) -> float:
        return self.lr * (1.0 - i * self.lr_decay)

    def threshold(self, i: int) -> float:
        return self.epsilon + i * self.slope


Null = Tensor | Conditioning
"""A null embedding: tokens [B, L, D] (SD-type models) or, on SDXL, a `Conditioning` of tokens
[B, L, D] and pooled [B, P] (no time ids: they follow the working size)."""


def initial_null(model) -> Null:
    """null_T: the condition of "" as fp32 parameters, tokens [1, L, D] and, on SDXL, pooled
    [1, P] (`DiffusionModel.encode_condition`)."""
    empty = model.encode_condition([""])
    pooled = None if empty.pooled is None else nn.Parameter(empty.pooled.float().clone())
    return embedding(nn.Parameter(empty.tokens.float().clone()), pooled)


def null_parameters(null: Null) -> list[Tensor]:
    """The tensors of a null embedding the optimiser updates: tokens, and pooled on SDXL."""
    if isinstance(null, Conditioning):
        return [f for f in (null.tokens, null.pooled) if f is not None]
    return [null]


@dataclass
class StepResult:
    """What one outer step produced: z_bar_{t-1}, the last loss, inner steps used."""

    z_prev: Tensor
    loss: float
    inner_steps: int


def optimize_step(
    model,
    i: int,
    schedule: DDIMSchedule,
    z_bar: Tensor,
    target: Tensor,
    cond: Tensor | Conditioning,
    null: Null,
    optimizer: torch.optim.Optimizer,
    settings: NullTextSettings,
    backward: Callable[[Tensor], None] = lambda loss: loss.backward(),
) -> StepResult:
    """Step 2 at sampling step i: fit `null` ([1, L, D], fp32, updated in place; on SDXL the
    tokens and the pooled [1, P] together) so that the guided DDIM step from z_bar lands on
    `target` (= z*_{t-1}); then advance.

    `optimizer` must hold only `null_parameters(null)`; its state is cleared (a fresh Adam per
    step, as in the reference) and its lr set to `settings.lr_at(i)`. `backward` lets a Lightning shell route the
    backward pass through `manual_backward`.
    """
    t, a_t, a_prev = schedule.timesteps[i], schedule.alphas[i], schedule.alphas_prev[i]
    w = settings.guidance_scale
    optimizer.state.clear()
    for group in optimizer.param_groups:
        group["lr"] = settings.lr_at(i)
    # (a) The conditional prediction does not depend on null: once per step.
    with torch.no_grad():
        eps_c = model.eps(z_bar, t, cond)
    loss_value, used = float("nan"), 0
    for _ in range(settings.num_inner_steps):
        # (b) Guided DDIM step as a function of null_t, eq. (3) of the paper.
        eps_u = model.eps(z_bar, t, null)
        z_prev = ddim_step(z_bar, classifier_free_guidance(eps_u, eps_c, w), a_t, a_prev)
        loss = torch.nn.functional.mse_loss(z_prev.float(), target.float())
        optimizer.zero_grad(set_to_none=True)
        backward(loss)
        optimizer.step()
        loss_value, used = float(loss.detach()), used + 1
        if settings.early_stop and loss_value < settings.threshold(i):
            break
    # (c) Advance on the optimised trajectory with the updated null_t.
    with torch.no_grad():
        eps_u = model.eps(z_bar, t, null)
        z_prev = ddim_step(z_bar, classifier_free_guidance(eps_u, eps_c, w), a_t, a_prev)
    return StepResult(z_prev=z_prev.detach(), loss=loss_value, inner_steps=used)


def guided_step_cond(
    model, i: int, schedule: DDIMSchedule, z_bar: Tensor, cond: Tensor | Conditioning
) -> Tensor:
    """eps_c(z_bar, t_i): the conditional prediction of sampling step i (independent of null)."""
    return model.eps(z_bar, schedule.timesteps[i], cond)


def guided_null_step(
    model, i: int, schedule: DDIMSchedule, z_bar: Tensor, eps_c: Tensor, null: Null, w: float
) -> Tensor:
    """The guided DDIM step of sampling step i from z_bar with the null embedding `null` (eq. 3):
    DDIM(z_bar, eps_u(null) + w (eps_c - eps_u(null))), differentiable in `null`."""
    t, a_t, a_prev = schedule.timesteps[i], schedule.alphas[i], schedule.alphas_prev[i]
    eps_u = model.eps(z_bar, t, null)
    return ddim_step(z_bar, classifier_free_guidance(eps_u, eps_c, w), a_t, a_prev)


def null_text_inversion(
    model,
    z0: Tensor,
    source_prompt: str,
    num_inference_steps: int = 50,
    settings: NullTextSettings = NullTextSettings(),
    progress: bool = False,
) -> Inversion:
    """The whole inversion as one function (library use and benchmarks; train.py's
    `stage=null_text` runs the same steps one Lightning training step per timestep).

    Returns an `Inversion` with x_T = z*_T, `uncond` the per-step null embeddings [N, L, D] (on
    SDXL a `Conditioning` of those and the null pooled embeddings [N, P]), the source prompt, the
    guidance w they were fitted for, and `diagnostics` inner_steps [N] (Adam steps used per
    timestep) and losses [N].
    """
    from tqdm.auto import tqdm

    schedule = make_schedule(model.scheduler, num_inference_steps).to(z0.device)
    cond = text_embedding(model, source_prompt, "source_prompt")
    inversion = invert(model, z0, cond, schedule, source_prompt)
    null = initial_null(model)
    optimizer = torch.optim.Adam(null_parameters(null), lr=settings.lr)
    z_bar = inversion.x_T
    nulls, used, losses = [], [], []
    steps = range(len(schedule))
    for i in tqdm(steps, desc="null-text optimisation", leave=False) if progress else steps:
        result = optimize_step(
            model, i, schedule, z_bar, inversion.target(i), cond, null, optimizer, settings
        )
        z_bar = result.z_prev
        nulls.append(null.detach().clone())  # a copy: the parameters move on
        used.append(result.inner_steps)
        losses.append(result.loss)
    return Inversion(
        x_T=inversion.x_T,
        schedule=schedule,
        uncond=cat_conditions(nulls),  # [N, L, D] (SDXL: and pooled [N, P])
        prompt=source_prompt,
        guidance_scale=settings.guidance_scale,
        diagnostics={"inner_steps": torch.tensor(used), "losses": torch.tensor(losses)},
    )
