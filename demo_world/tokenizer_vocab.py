"""Offline CLIP-style BPE tokenizers built from a word list (no hub files).

Real Stable Diffusion checkpoints ship a `CLIPTokenizer`; the tiny test models and the demo model
need one that can be built here without downloading anything. We learn byte-level BPE merges with
the `tokenizers` library using CLIP's own normaliser and pre-tokeniser, so every word of the given
list becomes a single token (as common English words are in the real CLIP vocabulary) and any other
text still tokenises (byte-level fallback). The result is a real `transformers.CLIPTokenizer` that
saves and loads with `save_pretrained` / `from_pretrained`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPTokenizer

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"

# A small general-purpose vocabulary for tiny test models: enough to write realistic prompts.
BASIC_WORDS = (
    "a an the of on in at with and to photo picture painting drawing image of cat dog bird horse "
    "car tree house man woman child person face flower apple banana cake table chair sky sea beach "
    "mountain road city forest field river lake snow rain sun moon star red orange yellow green "
    "cyan blue purple magenta pink brown black white gray grey gold silver small large big little "
    "tall short old young happy sad sitting standing running jumping sleeping eating wearing hat "
    "glasses shirt dress top bottom left right center middle background foreground circle square "
    "triangle cross heart shape object made from wood stone glass metal paper plastic style "
    "watercolor oil sketch cartoon realistic"
).split()


def build_clip_tokenizer(
    words: Iterable[str] = BASIC_WORDS, model_max_length: int = 77
) -> CLIPTokenizer:
    """A `CLIPTokenizer` in which each word of `words` is one token.

    Args:
        words: the words to learn as whole tokens (lower-case; duplicates are fine).
        model_max_length: the text encoder's context length, start and end tokens included.

    Returns:
        A tokenizer whose ids are: 256 byte symbols, their 256 end-of-word forms, the learned merges,
        then `<|startoftext|>` and `<|endoftext|>` (the layout of the real CLIP vocabulary).
    """
    words = sorted({w.lower() for w in words})
    reference = CLIPTokenizer()  # carries CLIP's normaliser and pre-tokeniser
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    bpe.normalizer = reference.backend_tokenizer.normalizer
    bpe.pre_tokenizer = reference.backend_tokenizer.pre_tokenizer
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=10 * len(words) + 1024,
        min_frequency=1,
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator(words, trainer=trainer)
    learned = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]

    # Byte symbols and their end-of-word forms first, so unseen words always tokenise.
    vocab: dict[str, int] = {}
    for symbol in sorted(alphabet):
        vocab.setdefault(symbol, len(vocab))
    for symbol in sorted(alphabet):
        vocab.setdefault(symbol + "</w>", len(vocab))
    for merge in merges:
        vocab.setdefault("".join(merge), len(vocab))
    vocab.setdefault(BOS, len(vocab))
    vocab.setdefault(EOS, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
    return tokenizer
