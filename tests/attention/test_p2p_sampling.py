"""Prompt-to-Prompt controllers through `p2p_sample` on the tiny model: exact properties."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor

from demo_world.tiny import build_tiny_model
from editing.attention import (
    AttentionController,
    AttentionRefine,
    AttentionReplace,
    AttentionReweight,
    AttentionStore,
    ComposedController,
    LocalBlend,
    word_indices,
)
from editing.diffusion.ddim import make_schedule
from editing.diffusion.denoise import ddim_sample
from editing.editors.p2p_sampling import p2p_sample
from editing.errors import UserInputError

STEPS = 6
W = 7.5
SOURCE, EDIT = "a red cat on a table", "a blue cat on a table"


class Recorder(AttentionController):
    """Records the conditional maps it sees, per step and layer (after the controllers before it)."""

    def __init__(self) -> None:
        super().__init__()
        self.maps: dict[tuple[int, str], tuple] = {}

    def wants(self, site) -> bool:
        return True

    def observe(self, probs, site) -> None:
        self.maps[(self.step, site.name)] = (site, probs.clone())


class SpyBlend(LocalBlend):
    """LocalBlend that logs (step, x_src, x_edits before, x_edits after, mask) of every step."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log = []

    def blend(self, x_src, x_edits):
        out = super().blend(x_src, x_edits)
        mask = None if out is x_edits else self.mask.clone()
        self.log.append((self.step, x_src.clone(), x_edits.clone(), out.clone(), mask))
        return out


def explicit_model(**kwargs):
    """A tiny model whose stock processor is diffusers' AttnProcessor (the explicit softmax)."""
    model = build_tiny_model(**kwargs)
    model.unet.set_attn_processor(AttnProcessor())
    return model


def noise(model, seed: int = 0):
    return torch.randn(1, *model.latent_shape, generator=torch.Generator().manual_seed(seed))


def sample(model, prompts, controller, steps: int = STEPS, **kwargs):
    schedule = make_schedule(model.scheduler, steps)
    return p2p_sample(model, noise(model), prompts, controller, schedule, W, **kwargs)


def guided_ddim(model, prompt: str, steps: int = STEPS):
    """Plain classifier-free-guided DDIM sampling, without any attention control."""
    emb = torch.cat([model.encode_prompt([""]), model.encode_prompt([prompt])])

    def eps_fn(x, t):
        eps_u, eps_c = model.eps(torch.cat([x, x]), t, emb).chunk(2)
        return eps_u + W * (eps_c - eps_u)

    return ddim_sample(noise(model), eps_fn, make_schedule(model.scheduler, steps))


@pytest.fixture(scope="module")
def model():
    return explicit_model()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_source_only_identity_equals_plain_guided_ddim(prediction_type):
    model = build_tiny_model(prediction_type=prediction_type)  # stock SDPA processors
    got = sample(model, [SOURCE], AttentionController())
    assert torch.equal(got, guided_ddim(model, SOURCE))
    assert torch.equal(sample(model, [SOURCE], None), got)


def test_uncond_embeddings_per_step_and_text_encoded_once(model, monkeypatch):
    null = model.encode_prompt([""])[0]  # [L, D]
    reference = sample(model, [SOURCE, EDIT], None)
    assert torch.equal(sample(model, [SOURCE, EDIT], None, uncond_embeddings=null), reference)
    per_step = null.expand(STEPS, *null.shape)
    calls = []
    original = model.encode_prompt
    monkeypatch.setattr(model, "encode_prompt", lambda p, *a: calls.append(p) or original(p, *a))
    assert torch.equal(sample(model, [SOURCE, EDIT], None, uncond_embeddings=per_step), reference)
    assert calls == [[SOURCE, EDIT]]
    with pytest.raises(ValueError, match="uncond_embeddings"):
        sample(model, [SOURCE], None, uncond_embeddings=per_step[:2])


def test_replace_with_identical_prompts_changes_nothing(model):
    """Exact: the edited maps := the source's maps, which are what the edit computes itself."""
    reference = sample(model, [SOURCE, SOURCE], None)
    replace = AttentionReplace(
        [SOURCE, SOURCE], model.tokenizer, 0.8, 0.6, self_replace_max_scale=1
    )
    assert torch.equal(sample(model, [SOURCE, SOURCE], replace), reference)


def test_replace_with_identical_prompts_against_sdpa():
    """With SDPA as the stock processor the edited layers run an explicit softmax instead.

    The two differ by float32 summation order only: one UNet call agrees to ~1e-6 of its
    magnitude (test_processor), guidance multiplies eps differences by w = 7.5, and over 6 steps the
    samples agree to ~1e-6 of their largest value (measured 1.8e-5 on values up to 18.5). The
    tolerance, 1e-5 of the largest value, leaves a factor 10 of headroom.
    """
    model = build_tiny_model()
    reference = sample(model, [SOURCE, SOURCE], None)
    replace = AttentionReplace(
        [SOURCE, SOURCE], model.tokenizer, 0.8, 0.6, self_replace_max_scale=1
    )
    got = sample(model, [SOURCE, SOURCE], replace)
    scale = reference.abs().max().item()
    torch.testing.assert_close(got, reference, rtol=0, atol=1e-5 * scale)


def test_reweight_by_one_changes_nothing(model):
    reference = sample(model, [SOURCE, SOURCE], None)
    reweight = AttentionReweight([SOURCE, SOURCE], model.tokenizer, {"red": 1.0, "cat": 1.0})
    assert torch.equal(sample(model, [SOURCE, SOURCE], reweight), reference)
    # On top of a word swap, factors of 1 give exactly the swap.
    prompts = [SOURCE, EDIT]
    replace = AttentionReplace(prompts, model.tokenizer)
    on_top = AttentionReweight(prompts, model.tokenizer, {"blue": 1.0}, base=replace)
    assert torch.equal(sample(model, prompts, on_top), sample(model, prompts, replace))
    stronger = AttentionReweight(prompts, model.tokenizer, {"blue": 3.0}, base=replace)
    assert not torch.equal(sample(model, prompts, stronger), sample(model, prompts, replace))


def controllers(tok, prompts):
    blend = dict(resolution=1.0, threshold=0.8, dilation=0)
    words = ("cat",) * len(prompts)
    return {
        "replace": AttentionReplace(prompts, tok, self_replace_max_scale=1.0),
        "refine": AttentionRefine(prompts, tok),
        "reweight": AttentionReweight(prompts, tok, {"cat": 2.0}),
        "blend": AttentionReplace(
            prompts, tok, local_blend=LocalBlend(prompts, tok, words, **blend)
        ),
        "store": AttentionStore(max_scale=1.0),
    }


@pytest.mark.parametrize("name", ["replace", "refine", "reweight", "blend", "store"])
def test_source_branch_is_never_modified(model, name):
    prompts = [SOURCE, EDIT, "a green cat on a table"]
    reference = sample(model, prompts, None)
    got = sample(model, prompts, controllers(model.tokenizer, prompts)[name])
    assert torch.equal(got[0], reference[0])
    if name != "store":
        assert not torch.equal(got[1:], reference[1:])
    else:
        assert torch.equal(got, reference)


def test_local_blend_keeps_the_source_outside_its_mask_at_every_step(model):
    prompts = [SOURCE, EDIT, "a green cat on a table"]
    tok = model.tokenizer
    blend = SpyBlend(
        prompts, tok, ("cat",) * 3, resolution=1.0, threshold=0.8, dilation=0, start=0.3
    )
    out = sample(model, prompts, AttentionReplace(prompts, tok, local_blend=blend), steps=10)
    assert [entry[0] for entry in blend.log] == list(range(10))
    for step, x_src, before, after, mask in blend.log:
        if step < 3:  # int(0.3 * 10): no blending yet
            assert mask is None and torch.equal(after, before)
            continue
        assert mask.shape == (2, 1, 8, 8) and 0 < mask.float().mean() < 1
        m = mask.expand_as(after)
        assert torch.equal(after[~m], x_src.expand_as(after)[~m])  # outside: the source, exactly
        assert torch.equal(after[m], before[m])  # inside: the edit's own sample
    final_mask = blend.log[-1][4].expand(2, *out.shape[1:])
    assert torch.equal(out[1:][~final_mask], out[:1].expand_as(out[1:])[~final_mask])


def test_cross_replace_fraction_per_word(model):
    """Before the cutoff the edit's cross maps are the source's; after it, its own (per word)."""
    prompts = [SOURCE, EDIT]
    tok = model.tokenizer
    windows = {"default_": 1.0, "blue": 0.5}
    replace = AttentionReplace(prompts, tok, cross_replace_steps=windows, self_replace_steps=0.0)
    recorder = Recorder()
    sample(model, prompts, ComposedController(replace, recorder))
    blue = word_indices(tok, EDIT, "blue")
    others = [j for j in range(77) if j not in blue]
    cross = [(step, maps) for (step, _), (site, maps) in recorder.maps.items() if site.is_cross]
    assert len(cross) == 4 * STEPS
    for step, maps in cross:
        source, edit = maps[0], maps[1]
        assert torch.equal(edit[..., others], source[..., others])
        assert torch.equal(edit[..., blue], source[..., blue]) == (step < STEPS // 2)


def test_self_replace_resolution_is_a_fraction_of_the_latent():
    """self_replace_max_scale=0.5 hits the 4x4 maps of an 8x8 latent, the 8x8 maps of a 16x16."""
    for resolution, small in ((32, 4), (64, 8)):
        model = explicit_model(resolution=resolution)
        prompts = [SOURCE, EDIT]
        replace = AttentionReplace(prompts, model.tokenizer, 0.0, 1.0, self_replace_max_scale=0.5)
        recorder = Recorder()
        sample(model, prompts, ComposedController(replace, recorder), steps=3)
        selfs = [(site, m) for site, m in recorder.maps.values() if not site.is_cross]
        injected = [(site, m) for site, m in selfs if site.scale <= 0.5]
        assert {site.size for site, _ in injected} == {(small, small)}
        assert all(torch.equal(m[0], m[1]) for _, m in injected)
        # Larger maps keep their own (equal to the source only where the inputs still coincide:
        # the first self-attention of the first step sees the same x_T in both branches).
        assert any(not torch.equal(m[0], m[1]) for site, m in selfs if site.scale == 1.0)


def test_local_blend_resolution_is_a_fraction_of_the_latent():
    for resolution, side in ((32, 4), (64, 8)):
        model = explicit_model(resolution=resolution)
        prompts = [SOURCE, EDIT]
        blend = LocalBlend(
            prompts, model.tokenizer, ("cat", "cat"), resolution=0.5, places=("mid",)
        )
        sample(
            model, prompts, AttentionReplace(prompts, model.tokenizer, local_blend=blend), steps=3
        )
        assert [site.size for site in blend.store.sites.values()] == [(side, side)]
        assert blend.mask.shape == (1, 1, 2 * side, 2 * side)
    # The reference's 0.25 (16x16 at 512 px) does not exist on an 8x8 latent: a clear error.
    model = explicit_model()
    blend = LocalBlend(prompts, model.tokenizer, ("cat", "cat"))
    with pytest.raises(UserInputError, match=r"resolution=0.25.*down 8x8 \(1\).*mid 4x4 \(0.5\)"):
        sample(model, prompts, AttentionReplace(prompts, model.tokenizer, local_blend=blend))


def test_attention_store_aggregates_per_resolution(model):
    prompts = [SOURCE, EDIT]
    store = AttentionStore(max_scale=1.0)
    sample(model, prompts, store)
    cross = store.aggregate(8, places=("down", "up"), is_cross=True, prompt_index=1)
    assert cross.shape == (8, 8, 77)
    torch.testing.assert_close(cross.sum(-1), torch.ones(8, 8))  # softmax rows, averaged
    assert torch.equal(store.aggregate(0.5, is_cross=False), store.aggregate(4, is_cross=False))
    assert store.aggregate(0.5, is_cross=False).shape == (4, 4, 16)
    with pytest.raises(UserInputError, match="no stored"):
        store.aggregate(2)


def test_v_prediction_model_runs_through_p2p_sample():
    model = explicit_model(prediction_type="v_prediction")
    prompts = [SOURCE, EDIT]
    tok = model.tokenizer
    blend = LocalBlend(prompts, tok, ("cat", "cat"), resolution=1.0, threshold=0.8, dilation=0)
    out = sample(model, prompts, AttentionReplace(prompts, tok, local_blend=blend))
    assert out.shape == (2, *model.latent_shape) and torch.isfinite(out).all()
    assert torch.equal(out[0], sample(model, prompts, None)[0])


def test_local_blend_subtract_words_shrink_the_mask(model):
    """At the first blended step both runs have seen the same maps: subtracting can only remove."""
    prompts = [SOURCE, EDIT]
    tok = model.tokenizer
    masks = []
    for subtract in (None, ("table", "table")):
        blend = SpyBlend(
            prompts, tok, ("cat", "cat"), subtract, resolution=1.0, threshold=0.8, dilation=0
        )
        sample(model, prompts, AttentionReplace(prompts, tok, local_blend=blend), steps=10)
        masks.append(next(entry[4] for entry in blend.log if entry[4] is not None))
    assert (masks[1] <= masks[0]).all() and not torch.equal(masks[1], masks[0])


def test_controller_built_for_other_prompts_is_refused(model):
    replace = AttentionReplace([SOURCE, EDIT], model.tokenizer)
    with pytest.raises(ValueError, match="built for 2 prompts"):
        sample(model, [SOURCE, EDIT, EDIT], replace)


class MaskSpy(LocalBlend):
    """LocalBlend that logs the word masks [P, 1, H, W] (row 0: the source words' region) it builds."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.masks = []

    def word_mask(self, maps, weights, size, pool, th):
        mask = super().word_mask(maps, weights, size, pool, th)
        self.masks.append(mask.clone())
        return mask


def _blend_run(model, maps: str, cross: float):
    prompts = [SOURCE, EDIT]
    tok = model.tokenizer
    blend = MaskSpy(
        prompts,
        tok,
        ("red", "blue"),
        resolution=1.0,
        threshold=0.8,
        dilation=0,
        start=0.0,
        maps=maps,
    )
    controller = AttentionReplace(
        prompts, tok, cross_replace_steps=cross, self_replace_steps=0.0, local_blend=blend
    )
    return sample(model, prompts, controller, steps=8), blend.masks


def test_local_blend_reads_the_edited_maps_by_default(model):
    """Inside the Replace window the edited branch's maps are the source's: with maps="edited"
    (reference) the edit's mask is exactly the source words' region; with maps="own" (its maps
    before the edit) it is the union with the new word's region, larger here. With no window
    the maps, masks and samples agree exactly."""
    assert LocalBlend([SOURCE, EDIT], model.tokenizer, ("red", "blue")).maps == "edited"
    _, edited = _blend_run(model, "edited", 1.0)
    _, own = _blend_run(model, "own", 1.0)
    assert len(edited) == len(own) == 8
    assert all(torch.equal(m[1], m[0]) for m in edited)
    assert any(0 < m.float().mean() < 1 for m in edited)
    for m_own, m_edited in zip(own, edited):
        assert torch.equal(m_own[0], m_edited[0])  # the source's maps are the same either way
        assert (m_own[1] >= m_own[0]).all()  # the union
    assert any(not torch.equal(m[1], m[0]) for m in own)
    out_edited, edited = _blend_run(model, "edited", 0.0)
    out_own, own = _blend_run(model, "own", 0.0)
    assert all(torch.equal(a, b) for a, b in zip(edited, own))
    assert torch.equal(out_edited, out_own)
    with pytest.raises(UserInputError, match="maps"):
        LocalBlend([SOURCE, EDIT], model.tokenizer, ("red", "blue"), maps="after")


def test_each_branch_gets_its_own_null_embedding_at_every_step(model, monkeypatch):
    """UNet batch of step i: [null_i (source), null*_i for every edit; C, C*...]. Without
    `edit_uncond_embeddings` every edit gets the source's null_i (reference); with it, its own."""
    prompts = [SOURCE, EDIT, "a green cat on a table"]
    empty = model.encode_prompt([""])[0]
    nulls = torch.stack([empty + 0.01 * (i + 1) for i in range(STEPS)])  # distinct per step
    edit_nulls = torch.stack([empty - 0.02 * (i + 1) for i in range(STEPS)])
    cond = model.encode_prompt(prompts)
    seen = []
    original = model.eps
    monkeypatch.setattr(
        model, "eps", lambda x, t, emb: seen.append(emb.clone()) or original(x, t, emb)
    )

    shared = sample(model, prompts, None, uncond_embeddings=nulls)
    assert len(seen) == STEPS
    for i, emb in enumerate(seen):
        assert torch.equal(emb, torch.cat([nulls[i].expand(3, -1, -1), cond]))

    seen.clear()
    own = sample(model, prompts, None, uncond_embeddings=nulls, edit_uncond_embeddings=edit_nulls)
    for i, emb in enumerate(seen):
        assert torch.equal(emb[0], nulls[i])
        assert torch.equal(emb[1:3], edit_nulls[i].expand(2, -1, -1))
        assert torch.equal(emb[3:], cond)
    # The source branch does not depend on the edits' nulls; the edits do.
    assert torch.equal(own[0], shared[0]) and not torch.equal(own[1:], shared[1:])

    seen.clear()
    sample(model, prompts, None, uncond_embeddings=nulls, edit_uncond_embeddings=empty)
    assert all(torch.equal(emb[1:3], empty.expand(2, -1, -1)) for emb in seen)
    with pytest.raises(ValueError, match="edit_uncond_embeddings"):
        sample(model, prompts, None, uncond_embeddings=nulls, edit_uncond_embeddings=nulls[:2])
