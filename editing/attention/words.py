"""Words of a prompt -> positions of their tokens in the text encoder's sequence.

Prompt-to-Prompt addresses cross-attention maps by token position (one key per token), while users
name words ("cat", "red car"). A BPE tokenizer may split a word into several tokens ("fluffy" ->
"f", "l", "u", "f", "f", "y</w>"), and punctuation becomes tokens of its own, so positions are
found from each token's character span in the prompt: the tokenizer's offsets mapping where it has
one (fast tokenizers), otherwise by encoding the prompt piece by piece (words, punctuation runs)
and checking that the pieces concatenate to the whole encoding.

Positions index the encoded sequence with its special tokens: position 0 is the start token in CLIP.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from editing.errors import UserInputError

_PIECES = re.compile(r"\w+|[^\w\s]+")


def token_ids(tokenizer, text: str, special: bool = True) -> list[int]:
    """The token ids of `text` (with the start/end tokens when `special`), unpadded."""
    return list(tokenizer(text, add_special_tokens=special).input_ids)


def token_spans(tokenizer, prompt: str) -> list[tuple[int, int] | None]:
    """Character span (start, end) in `prompt` of every token of its encoding; None for specials.

    Without an offsets mapping a token gets the span of the piece it belongs to (a word or a run of
    punctuation), which is all that word lookup needs.
    """
    ids = token_ids(tokenizer, prompt)
    try:
        offsets = tokenizer(prompt, return_offsets_mapping=True).offset_mapping
    except (NotImplementedError, TypeError, ValueError, KeyError, AttributeError):
        offsets = None
    if offsets is not None and len(offsets) == len(ids):
        specials = set(tokenizer.all_special_ids)
        return [None if i in specials else (a, b) for i, (a, b) in zip(ids, offsets)]

    # Slow tokenizer: encode piece by piece and locate the pieces inside the full encoding.
    spans: list[tuple[int, int]] = []
    body: list[int] = []
    for match in _PIECES.finditer(prompt):
        piece = token_ids(tokenizer, match.group(), special=False)
        body += piece
        spans += [match.span()] * len(piece)
    for start in range(len(ids) - len(body) + 1):
        if ids[start : start + len(body)] == body:
            return [None] * start + spans + [None] * (len(ids) - start - len(body))
    raise ValueError(
        f"cannot map the tokens of {prompt!r} to its words with {type(tokenizer).__name__}: "
        "it has no offsets mapping and merges tokens across words"
    )


def word_indices(tokenizer, prompt: str, word: str) -> list[int]:
    """Token positions of every occurrence of `word` in `prompt` (case-insensitive).

    `word` may be several words ("red car"); it matches whole words only ("cat" is not in
    "cats" nor in "catfish"). Raises `UserInputError` naming the word and the prompt if absent.
    """
    needle = word.strip()
    if not needle:
        raise UserInputError(f"an empty word was given for prompt {prompt!r}")
    pattern = re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, needle.split())) + r"(?!\w)", re.I)
    spans = token_spans(tokenizer, prompt)
    found: list[int] = []
    for match in pattern.finditer(prompt):
        a, b = match.span()
        found += [j for j, s in enumerate(spans) if s is not None and s[0] < b and s[1] > a]
    if not found:
        raise UserInputError(
            f"the word {word!r} is not in the prompt {prompt!r}; name a word of that prompt "
            f"(its words: {', '.join(repr(w) for w in prompt.split())})"
        )
    return sorted(set(found))


def check_prompt_lengths(tokenizer, prompts: Sequence[str]) -> None:
    """Refuse prompts longer than the text encoder's context (their maps would not exist)."""
    limit = int(tokenizer.model_max_length)
    for prompt in prompts:
        n = len(token_ids(tokenizer, prompt))
        if n > limit:
            raise UserInputError(
                f"prompt {prompt[:40]!r}... is {n} tokens long; the text encoder takes at most "
                f"{limit} (start/end tokens included). Shorten it."
            )


def check_same_tokens(tokenizers: Sequence, prompts: Sequence[str]) -> None:
    """Refuse a prompt that the tokenizers of one model split into different tokens.

    SDXL's token embeddings are both text encoders' hidden states concatenated per position
    ([h1_j ; h2_j] at position j), so cross-attention key j is token j of both encodings only when
    the two tokenizers split the prompt alike. SDXL 1.0's two CLIP tokenizers share the BPE
    vocabulary, merges and lower-casing and differ only in the padding token ("<|endoftext|>" /
    "!"), which comes after the end token, where no word is: what this relies on, and checks on the
    unpadded token strings, so that word positions can be read from the first tokenizer alone.
    """
    first, *others = tokenizers
    for prompt in prompts:
        tokens = first.convert_ids_to_tokens(token_ids(first, prompt))
        for other in others:
            if other.convert_ids_to_tokens(token_ids(other, prompt)) != tokens:
                raise UserInputError(
                    f"the model's tokenizers split the prompt {prompt!r} into different tokens, so "
                    f"its words have no single position in the attention maps: rephrase it"
                )


def words_indices(tokenizer, prompt: str, words: str | Sequence[str] | None) -> list[int]:
    """Token positions of several words of one prompt (None or () -> no positions)."""
    if words is None:
        return []
    if isinstance(words, str):
        words = [words]
    return sorted({j for w in words for j in word_indices(tokenizer, prompt, w)})
