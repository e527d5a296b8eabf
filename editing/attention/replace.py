"""`AttentionReplace`: word swap (Prompt-to-Prompt Sec. 3.2, "Word Swap").

The user swaps words of the source prompt ("a red car" -> "a blue car"); the edited branch takes
the source's cross-attention maps for the first steps, so the new word lands where the old one was:

    Edit(M_t, M*_t, t) = M*_t if t < tau, else M_t         (P2P Sec. 3.2; tau = cross_replace_steps)

Token j of the edited prompt copies token j of the source (the identity mapping), which requires
both prompts to tokenise to the same number of tokens; when they do not, the error names the words
that differ and their token counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from editing.attention.alignment import differing_words
from editing.attention.edit_base import AttentionEdit
from editing.attention.words import token_ids
from editing.errors import UserInputError


def _count(tokenizer, text: str) -> str:
    n = len(token_ids(tokenizer, text, special=False)) if text else 0
    return f"{text!r} ({n} token{'s' if n != 1 else ''})"


def check_same_token_count(prompts: Sequence[str], tokenizer) -> None:
    """Refuse edited prompts whose token count differs from the source's, naming the words."""
    source = prompts[0]
    n_source = len(token_ids(tokenizer, source))
    for prompt in prompts[1:]:
        n = len(token_ids(tokenizer, prompt))
        if n == n_source:
            continue
        diffs = "; ".join(
            f"{_count(tokenizer, a)} -> {_count(tokenizer, b)}"
            for a, b in differing_words(source, prompt)
        )
        raise UserInputError(
            f"Replace (word swap) needs prompts with the same number of tokens, but {source!r} has "
            f"{n_source} and {prompt!r} has {n}: {diffs}. Swap in words with the same token count, "
            "or use the Refine controller (AttentionRefine) for prompts that add or remove words."
        )


class AttentionReplace(AttentionEdit):
    """Word swap: the edited branches take the source's cross-attention maps, token for token.

    Args: see `AttentionEdit` (prompts, tokenizer, cross/self replace windows, local_blend).
    Defaults from the reference notebook's word-swap example: cross 0.8, self 0.4.
    """

    def prepare(self) -> None:
        check_same_token_count(self.prompts, self.tokenizer)

    def map_cross(self, source: Tensor, edits: Tensor) -> Tensor:
        """Identity token mapping: every edit gets M_t. [H, N, L], [K, H, N, L] -> [K, H, N, L]."""
        return source.expand_as(edits)
