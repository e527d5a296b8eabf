"""`AttentionRefine`: words added or removed (Prompt-to-Prompt Sec. 3.2, "Adding a New Phrase").

With an alignment A of the edited prompt's tokens to the source's (`editing.attention.alignment`):

    (Edit(M_t, M*_t, t))_{i,j} = (M*_t)_{i,j} if A(j) = None, else (M_t)_{i,A(j)}     (P2P Sec. 3.2)

so tokens common to both prompts keep the source's layout and new tokens attend where they like.
"""

from __future__ import annotations

import torch
from torch import Tensor

from editing.attention.alignment import refinement_mapper
from editing.attention.edit_base import AttentionEdit
from editing.attention.words import token_ids


class AttentionRefine(AttentionEdit):
    """Refinement: aligned source maps are copied, new tokens keep their own maps.

    Args: see `AttentionEdit`. Attributes `mapper` [K, L] (source position of each edited token)
    and `alphas` [K, L] (True where a source map is copied).
    """

    def prepare(self) -> None:
        tokenizer = self.tokenizer
        source = token_ids(tokenizer, self.prompts[0])
        pairs = [
            refinement_mapper(source, token_ids(tokenizer, p), self.length)
            for p in self.prompts[1:]
        ]
        self.mapper = torch.stack([m for m, _ in pairs])
        self.alphas = torch.stack([a for _, a in pairs])

    def map_cross(self, source: Tensor, edits: Tensor) -> Tensor:
        """M_t gathered through A where aligned, M*_t elsewhere: [K, H, N, L]."""
        if self.mapper.device != edits.device:
            self.mapper, self.alphas = self.mapper.to(edits.device), self.alphas.to(edits.device)
        gathered = source[:, :, self.mapper].permute(2, 0, 1, 3)  # [H, N, K, L] -> [K, H, N, L]
        return torch.where(self.alphas[:, None, None, :], gathered, edits)
