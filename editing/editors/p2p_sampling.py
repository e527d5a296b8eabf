"""Guided DDIM sampling of a source prompt and its edits under attention control.

Prompt-to-Prompt Algorithm 1 (Hertz et al. 2022), with null-text inversion's per-step
unconditional embeddings (Mokady et al. 2023, Sec. 3.2): every prompt starts from the same x_T, the
source and its K edits run as one batch (the source branch is computed once and shared by all
edits), and at each step i, for the source (C, null_i) and each edit (C*, null*_i),

    eps = eps_theta(x_t, t, null_i) + w (eps_theta(x_t, t, C) - eps_theta(x_t, t, null_i))
    x_{t-1} = DDIM(x_t, eps)                       (editing.diffusion.ddim.ddim_step)
    x*_{t-1} = LocalBlend(x_{t-1}, x*_{t-1})       (the controller's step hook)

with the attention controller rewriting the edited branches' attention maps inside eps_theta.
The edited branches' null*_i are the source's null_i (the reference code: one optimised null per
step for every branch) unless `edit_uncond_embeddings` gives their own (e.g. the embedding of "":
the null-text nulls then only keep the source branch on the image's trajectory).

On SDXL every condition is a `Conditioning`: C and null_i carry their pooled embeddings ([P] per
prompt; a null-text inversion's null pooled embeddings per step, [N, P]), batched with the tokens in
the same [uncond; cond] order, and the time ids follow the working size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from editing.attention.controller import AttentionController
from editing.attention.processor import attention_control
from editing.diffusion.cfg import classifier_free_guidance
from editing.diffusion.conditioning import Conditioning, as_conditioning, embedding
from editing.diffusion.ddim import DDIMSchedule
from editing.diffusion.denoise import denoise
from editing.models.diffusion_model import DiffusionModel


def _uncond_per_step(
    model: DiffusionModel,
    uncond_embeddings: Tensor | Conditioning | None,
    num_steps: int,
    name: str = "",
) -> Conditioning:
    """The unconditional condition of every step: tokens [N, L, D] (or [1, L, D] when constant),
    with pooled [N or 1, P] on SDXL."""
    if uncond_embeddings is None:
        return model.encode_condition([""])
    if isinstance(uncond_embeddings, Tensor) and uncond_embeddings.dim() == 2:
        uncond_embeddings = uncond_embeddings.unsqueeze(0)
    uncond = as_conditioning(uncond_embeddings)
    rows = {f.shape[0] for f in uncond.fields() if f is not None}
    if uncond.tokens.dim() == 3 and len(rows) == 1 and rows <= {1, num_steps}:
        return uncond
    raise ValueError(
        f"{name}uncond_embeddings must be [L, D] or [N, L, D] (pooled [N, P]) with N = "
        f"{num_steps} sampling steps, got {[tuple(f.shape) for f in uncond.fields() if f is not None]}"
    )


def _at(per_step: Conditioning, i: int) -> Conditioning:
    """Step i's condition (batch 1) of a per-step table of N rows or a constant one of 1."""
    j = i if per_step.batch > 1 else 0
    return per_step[j : j + 1]


@torch.no_grad()
def p2p_sample(
    model: DiffusionModel,
    x_T: Tensor,
    prompts: Sequence[str],
    controller: AttentionController | None,
    schedule: DDIMSchedule,
    guidance_scale: float,
    uncond_embeddings: Tensor | Conditioning | None = None,
    generator: torch.Generator | None = None,
    edit_uncond_embeddings: Tensor | Conditioning | None = None,
) -> Tensor:
    """Sample [source, edit_1, ..., edit_K] from one x_T with attention control.

    Args:
        model: the diffusion model (any prediction type: `model.eps` normalises to eps).
        x_T: [1, C, h, w] the starting noise (e.g. z*_T of an inversion), shared by every prompt.
        prompts: [source, edit_1, ..., edit_K]; the controller must be built for the same list.
        controller: an `AttentionController` (None: the identity controller). It is `reset()`,
            then told each step with `begin_step(i, N)`, and its `end_step` runs after each step.
        schedule: the DDIM schedule (the one the inversion used, for reconstruction).
        guidance_scale: w of classifier-free guidance (SD default 7.5).
        uncond_embeddings: null-text embeddings: [N, L, D] one per sampling step (null-text
            inversion), [L, D] for all steps, or None for the embedding of ""; on SDXL a
            `Conditioning` of tokens [N or 1, L, D] and pooled [N or 1, P].
        generator: unused; deterministic DDIM (eta = 0) draws no noise. Kept so that callers
            need not change when stochastic sampling is added.
        edit_uncond_embeddings: the edited branches' unconditional embeddings, in the same forms
            as `uncond_embeddings` ([N, L, D], [L, D]; one for every edit); None: the source's
            `uncond_embeddings` at every step (reference).

    Returns:
        [P, C, h, w] the final samples x_0 (latents; not decoded), row 0 the source.

    UNet batch per step i: [null_i, null*_i x K; cond x P] (one call), the layout the
    controllers expect.
    """
    del generator
    controller = controller if controller is not None else AttentionController()
    num_prompts, num_steps = len(prompts), len(schedule)
    if controller.num_prompts is not None and controller.num_prompts != num_prompts:
        raise ValueError(
            f"the controller was built for {controller.num_prompts} prompts, p2p_sample was given "
            f"{num_prompts}: build it with the same [source, edit_1, ...] list"
        )
    if x_T.dim() != 4 or x_T.shape[0] != 1:
        raise ValueError(f"x_T must be [1, C, h, w], got {tuple(x_T.shape)}")

    # 1. Text conditions, once: C for every prompt [P, L, D]; per step [N or 1, L, D] the source's
    #    null_i and the edits' null*_i (the source's unless given); SDXL: with their pooled [., P].
    cond = model.encode_condition(list(prompts))
    uncond = _uncond_per_step(model, uncond_embeddings, num_steps).to(cond.tokens)
    edit_uncond = (
        uncond
        if edit_uncond_embeddings is None
        else _uncond_per_step(model, edit_uncond_embeddings, num_steps, "edit_").to(cond.tokens)
    )
    rows = [  # [2P, ...] per step: [null_i, null*_i x K; C, C*_1 .. C*_K]
        Conditioning.cat([_at(uncond, i), _at(edit_uncond, i).expand(num_prompts - 1), cond])
        for i in range(max(uncond.batch, edit_uncond.batch))
    ]
    embeddings = [embedding(c.tokens, c.pooled) for c in rows]  # SD-type: the token tensor

    # 2. Every branch starts from the same x_T.
    x = x_T.expand(num_prompts, *x_T.shape[1:]).clone()
    controller.reset()

    def eps_fn(x: Tensor, t: Tensor, i: int) -> Tensor:
        # 4. One UNet call for [null_i, null*_i x K; C x P], then classifier-free guidance.
        emb = embeddings[i if len(embeddings) > 1 else 0]
        eps_u, eps_c = model.eps(torch.cat([x, x]), t, emb).chunk(2)
        return classifier_free_guidance(eps_u, eps_c, guidance_scale)

    with attention_control(model.unet, controller):
        # 3. The controller's clock (cross/self replacement windows); 5. the DDIM step (the
        #    shared loop's default); 6. the controller's step hook (LocalBlend) on the edits.
        return denoise(
            x,
            schedule,
            eps_fn,
            before_step=lambda i, t: controller.begin_step(i, num_steps),
            after_step=lambda x_prev, i: controller.end_step(x_prev),
        )
