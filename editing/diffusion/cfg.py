"""Classifier-free guidance (Ho & Salimans 2022).

eps_hat = eps_u + w (eps_c - eps_u), with eps_u the prediction for the unconditional ("null")
embedding and eps_c for the text embedding; w = 1 is the conditional model alone. The two
predictions are computed in one batched UNet call; a condition with SDXL's pooled embedding and
time ids (`editing.diffusion.conditioning.Conditioning`) is batched along every field. CLIP guidance for Blended Diffusion lives in
`editing/editors/blended_guidance.py`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from editing.diffusion.conditioning import Conditioning, cat_conditions, expand_condition


def classifier_free_guidance(eps_u: Tensor, eps_c: Tensor, w: float) -> Tensor:
    """eps_u + w (eps_c - eps_u): the guided noise prediction (CFG eq. 6)."""
    return eps_u + w * (eps_c - eps_u)


def guided_eps(
    model,
    x_t: Tensor,
    t: Tensor | int,
    cond: Tensor | Conditioning,
    uncond: Tensor | Conditioning,
    w: float | Tensor,
) -> Tensor:
    """Guided eps for samples x_t [B, C, h, w] with text conditioning cond (token embeddings
    [B, L, D], or a `Conditioning` with SDXL's pooled embedding and time ids).

    `uncond` has B rows or 1 (broadcast); `w` a float or a per-sample [B, 1, 1, 1]
    tensor (sweeps). When every w is 1 only the conditional pass runs. Unconditional and
    conditional passes share one UNet call ([uncond; cond] batch).
    """
    if bool(torch.as_tensor(w == 1.0).all()):
        return model.eps(x_t, t, cond)
    uncond = expand_condition(uncond, x_t.shape[0])
    eps = model.eps(torch.cat([x_t, x_t]), t, cat_conditions([uncond, cond]))
    eps_u, eps_c = eps.chunk(2)
    return classifier_free_guidance(eps_u, eps_c, w)
