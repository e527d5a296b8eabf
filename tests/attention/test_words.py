"""Word lookup, token alignment and the user-facing errors of the controllers."""

from __future__ import annotations

import pytest
import torch

from demo_world.tokenizer_vocab import build_clip_tokenizer
from editing.attention import (
    AttentionRefine,
    AttentionReplace,
    AttentionReweight,
    LocalBlend,
    align,
    refinement_mapper,
    word_indices,
)
from editing.attention.alignment import differing_words
from editing.attention.words import token_ids, token_spans
from editing.errors import UserInputError


@pytest.fixture(scope="module")
def tok():
    return build_clip_tokenizer()


class NoOffsets:
    """A tokenizer without an offsets mapping (like transformers' slow tokenizers)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.all_special_ids = inner.all_special_ids
        self.model_max_length = inner.model_max_length

    def __call__(self, text, **kwargs):
        if kwargs.get("return_offsets_mapping"):
            raise NotImplementedError
        return self.inner(text, **kwargs)


def test_word_indices_single_multi_token_and_punctuation(tok):
    # "fluffy" is not in the tiny vocabulary: BPE splits it into 6 tokens; position 0 is <start>.
    prompt = "a photo of a fluffy cat, sitting"
    assert len(token_ids(tok, "fluffy", special=False)) == 6
    assert word_indices(tok, prompt, "fluffy") == [5, 6, 7, 8, 9, 10]
    assert word_indices(tok, prompt, "cat") == [11]  # not the comma after it
    assert word_indices(tok, prompt, "fluffy cat") == list(range(5, 12))
    assert word_indices(tok, "A cat. a Cat", "cat") == [2, 5]  # every occurrence, any case
    ids = token_ids(tok, prompt)
    assert tok.convert_ids_to_tokens(ids[11]) == "cat</w>"


def test_word_indices_whole_words_only_and_missing_word(tok):
    with pytest.raises(UserInputError, match=r"'cat' is not in the prompt 'a catfish and cats'"):
        word_indices(tok, "a catfish and cats", "cat")
    with pytest.raises(UserInputError, match="'dog'"):
        word_indices(tok, "a cat", "dog")


def test_word_indices_without_offsets_mapping(tok):
    prompt = "a photo of a fluffy cat, sitting"
    slow = NoOffsets(tok)
    assert [s is None for s in token_spans(slow, prompt)] == [
        s is None for s in token_spans(tok, prompt)
    ]
    for word in ("fluffy cat", "fluffy", "cat", "a", "sitting"):
        assert word_indices(slow, prompt, word) == word_indices(tok, prompt, word)


def test_alignment_of_a_cat_and_a_fluffy_cat(tok):
    source, edit = token_ids(tok, "a cat"), token_ids(tok, "a fluffy cat")
    assert len(source) == 4 and len(edit) == 10  # <start> a [6 x fluffy] cat <end>
    pairs = align(source, edit)
    matched = [(i, j) for i, j in pairs if i is not None and j is not None]
    assert matched == [(0, 0), (1, 1), (2, 8), (3, 9)]
    assert [j for i, j in pairs if i is None] == [2, 3, 4, 5, 6, 7]

    mapper, alphas = refinement_mapper(source, edit, 77)
    assert mapper[:10].tolist()[:2] == [0, 1] and mapper[8:10].tolist() == [2, 3]
    assert alphas[:10].tolist() == [True, True] + [False] * 6 + [True, True]
    # Padding after <end> copies the source's padding in order, while the source has some.
    assert mapper[10:].tolist() == list(range(4, 71))
    assert alphas[10:].all()

    refine = AttentionRefine(["a cat", "a fluffy cat"], tok)
    assert torch.equal(refine.mapper[0], mapper) and torch.equal(refine.alphas[0], alphas)


def test_refinement_when_words_are_removed(tok):
    source, edit = token_ids(tok, "a big red car"), token_ids(tok, "a car")
    mapper, alphas = refinement_mapper(source, edit, 77)
    assert mapper[:4].tolist() == [0, 1, 4, 5] and alphas[:4].all()
    assert mapper[4:].tolist()[:3] == [6, 7, 8]
    assert not alphas[-2:].any()  # the source has no padding left to copy there


def test_align_general_sequences():
    assert align("kitten", "sitting") == align(list("kitten"), list("sitting"))
    pairs = align("abc", "abc")
    assert pairs == [(0, 0), (1, 1), (2, 2)]
    assert align("", "ab") == [(None, 0), (None, 1)]


def test_replace_with_unequal_token_counts_names_the_words(tok):
    assert differing_words("a cat on a chair", "a catfish on a chair") == [("cat", "catfish")]
    with pytest.raises(UserInputError) as info:
        AttentionReplace(["a cat on a chair", "a catfish on a chair"], tok)
    message = str(info.value)
    assert "'cat' (1 token)" in message and "'catfish' (5 tokens)" in message
    assert "Refine" in message
    AttentionReplace(["a red cat", "a blue cat", "a green cat"], tok)  # same counts: accepted


def test_words_missing_from_prompts_are_refused(tok):
    prompts = ["a red cat", "a blue cat"]
    with pytest.raises(UserInputError, match="'dog' is not in the prompt 'a red cat'"):
        LocalBlend(prompts, tok, ("dog", "cat"))
    with pytest.raises(UserInputError, match="one entry per prompt"):
        LocalBlend(prompts, tok, ("cat",))
    with pytest.raises(UserInputError, match="'green' is not in the prompt 'a blue cat'"):
        AttentionReweight(prompts, tok, {"green": 2.0})
    with pytest.raises(UserInputError, match="'green'.*none of the edited prompts"):
        AttentionReplace(prompts, tok, cross_replace_steps={"default_": 0.8, "green": 0.4})
    with pytest.raises(UserInputError, match="self_replace_steps"):
        AttentionReplace(prompts, tok, self_replace_steps=1.5)
    with pytest.raises(UserInputError, match="at least one edited prompt"):
        AttentionReplace(["a red cat"], tok)
    long = " ".join(["cat"] * 80)
    with pytest.raises(UserInputError, match="82 tokens long"):
        AttentionRefine(["a cat", long], tok)
    with pytest.raises(UserInputError, match="82 tokens long"):
        LocalBlend(["a cat", long], tok, ("cat", "cat"))


def test_per_word_cross_replace_windows(tok):
    prompts = ["a red cat", "a blue cat", "a blue dog"]
    ctrl = AttentionReplace(prompts, tok, cross_replace_steps={"default_": 0.8, "blue": 0.4})
    table = ctrl.cross_alpha(10)  # [steps, edits, tokens]
    blue = word_indices(tok, "a blue cat", "blue")
    assert blue == [2]
    assert table[:4, :, 2].all() and not table[4:, :, 2].any()
    others = [j for j in range(77) if j != 2]
    assert table[:8][:, :, others].all() and not table[8:].any()
    # begin_step exposes the same row.
    ctrl.begin_step(5, 10)
    assert torch.equal(ctrl.cross_now, table[5])
