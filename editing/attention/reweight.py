"""`AttentionReweight`: the attention "equalizer" (Prompt-to-Prompt Sec. 3.2, "Attention Re-weighting").

Chosen tokens j* of the edited prompt get their cross-attention scaled by a factor c:

    (Edit(M_t, M*_t, t))_{i,j} = c * (M_t)_{i,j} if j = j*, else (M_t)_{i,j}       (P2P Sec. 3.2)

(no renormalisation, as in the paper). As in the public reference code, M_t may first go through a
base Replace/Refine controller (reweighting on top of a word swap or refinement), and the
reweighting applies within the controller's own `cross_replace_steps` window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from editing.attention.edit_base import AttentionEdit
from editing.attention.words import word_indices


class AttentionReweight(AttentionEdit):
    """Scale chosen words' cross-attention, optionally on top of a base controller's mapping.

    Args:
        prompts: [source, edit_1, ..., edit_K].
        tokenizer: the text encoder's tokenizer.
        factors: {word: c}, words of the edited prompts (each must be in every edited prompt).
        base: optional `AttentionReplace`/`AttentionRefine` for the same prompts whose token mapping
            is applied first (only its mapping is used; windows are this controller's).
        cross_replace_steps, self_replace_steps, self_replace_max_scale, local_blend: see
            `AttentionEdit`.
    Attribute `equalizer`: [K, L] factor per edited token (1 elsewhere).
    """

    def __init__(
        self,
        prompts: Sequence[str],
        tokenizer,
        factors: Mapping[str, float],
        base: AttentionEdit | None = None,
        **edit_settings,
    ) -> None:
        super().__init__(prompts, tokenizer, **edit_settings)
        if base is not None and list(base.prompts) != self.prompts:
            raise ValueError("the base controller of AttentionReweight must use the same prompts")
        self.base = base
        self.equalizer = torch.ones(len(self.prompts) - 1, self.length)
        for word, factor in factors.items():
            for k, prompt in enumerate(self.prompts[1:]):
                self.equalizer[k, word_indices(tokenizer, prompt, word)] = float(factor)

    def map_cross(self, source: Tensor, edits: Tensor) -> Tensor:
        """c * M_t per token (M_t through the base mapping first): [K, H, N, L]."""
        mapped = (
            source.expand_as(edits) if self.base is None else self.base.map_cross(source, edits)
        )
        if self.equalizer.device != edits.device:
            self.equalizer = self.equalizer.to(edits.device)
        return mapped * self.equalizer[:, None, None, :].to(mapped.dtype)
