"""Null-text inversion + Prompt-to-Prompt on SDXL (`base_model=tiny_sdxl`): the null pooled
embedding optimised with the null tokens, the artifact's per-step null pooled embeddings and SDXL
facts, train.py -> artifact -> edit.py at a non-square working size, the editor sampling with the
artifact's nulls (tokens and pooled) at every step, the optimisation-free inversions, LocalBlend on
SDXL's cross-attention layout, word positions through both tokenizers and the refusals across
model families."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import compose_config
from PIL import Image

from demo_world.tokenizer_vocab import build_clip_tokenizer
from editing.attention import AttentionController, AttentionReplace, LocalBlend, attention_control
from editing.attention.site import cross_attention_scales
from editing.attention.words import check_same_tokens
from editing.diffusion.cfg import classifier_free_guidance, guided_eps
from editing.diffusion.conditioning import Conditioning
from editing.diffusion.ddim import ddim_step, make_schedule
from editing.diffusion.denoise import ddim_sample
from editing.editors.apply import apply_editor
from editing.editors.null_text_p2p import NullTextP2PEditor
from editing.editors.p2p_sampling import p2p_sample
from editing.errors import UserInputError
from editing.inversion.ddim_inversion import invert
from editing.inversion.null_text import (
    NullTextSettings,
    initial_null,
    null_parameters,
    null_text_inversion,
    optimize_step,
)
from editing.io.artifacts import load_artifact, model_metadata, read_metadata
from editing.io.edit_inputs import Inputs
from editing.io.geometry import SizeRule
from editing.io.images import load_image

SOURCE, TARGET = "a red circle", "a blue circle"
STEPS = 3
COMMON = ["trainer=cpu", "logger=none", "callbacks=none"]


def _wide_photo(path):
    """A 64x48 (4:3) photo: on tiny_sdxl a 40x24 working size (a 6x10 latent)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    rgb[12:36, 16:44] = (200, 30, 30)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`train.py stage=null_text base_model=tiny_sdxl` on the wide photo: (photo, output_dir)."""
    from editing_app.commands.train import train

    root = tmp_path_factory.mktemp("sdxl_null_text")
    photo, ckpt = _wide_photo(root / "wide.png"), root / "ckpt"
    train(
        compose_config(
            "train",
            [
                *COMMON,
                "base_model=tiny_sdxl",
                "stage=null_text",
                f"image={photo}",
                f"source_prompt={SOURCE}",
                f"output_dir={ckpt}",
                f"stage.num_inference_steps={STEPS}",
                "stage.num_inner_steps=3",
                "stage.early_stop=false",
            ],
        )
    )
    return photo, ckpt


def _image(model, path):
    return load_image(path, SizeRule.for_model(model))


def test_the_stage_trains_tokens_and_pooled_and_records_the_sdxl_facts(trained, tiny_sdxl_model):
    photo, ckpt = trained
    path = ckpt / "null_text.safetensors"
    artifact = load_artifact(path, "null_text", expect=model_metadata(tiny_sdxl_model))
    nulls, pooled = artifact["null_embeddings"], artifact["null_embeddings_pooled"]
    assert nulls.shape == (STEPS, 77, 48) and pooled.shape == (STEPS, 32)
    assert nulls.dtype == pooled.dtype == torch.float32
    empty = tiny_sdxl_model.encode_condition([""])
    assert not empty.pooled.any()  # null_T: SDXL's zero "" condition (force_zeros_for_empty_prompt)
    for i in range(STEPS):  # every step's pair moved away from it, and the steps differ
        assert pooled[i].abs().amin() > 0 and not torch.equal(nulls[i], empty.tokens[0])
    assert not torch.equal(pooled[0], pooled[-1]) and not torch.equal(nulls[0], nulls[-1])
    assert artifact["inner_steps"].tolist() == [3] * STEPS  # early_stop=false
    h, w = _image(tiny_sdxl_model, photo).size
    assert (h, w) == (24, 40)
    meta = read_metadata(path)
    assert meta["conditioning"] == "sdxl" and meta["sdxl_pooled_dim"] == "32"
    assert meta["sdxl_time_ids"] == f"{h},{w},0,0,{h},{w}" and meta["working_size"] == f"{h}x{w}"
    assert artifact["z_T"].shape == (1, *tiny_sdxl_model.sample_shape((h, w))) == (1, 4, 6, 10)


def test_the_editor_samples_with_the_artifacts_nulls_at_every_step(trained, tiny_sdxl_model):
    """Source row i of the UNet batch: the artifact's null tokens and null pooled of step i; the
    edit's rows: the same (edit_null=shared); the conditional rows: the prompts' conditions."""
    photo, ckpt = trained
    model = tiny_sdxl_model
    artifact = load_artifact(ckpt / "null_text.safetensors", "null_text")
    seen = []
    handle = model.unet.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(kwargs), with_kwargs=True
    )
    try:
        editor = NullTextP2PEditor(blend_words="auto", blend_resolution=0.5)
        inputs = Inputs(image=_image(model, photo), target_prompt=TARGET, checkpoint_dir=ckpt)
        results = apply_editor(editor, model, inputs)
    finally:
        handle.remove()
    assert [r.label for r in results] == [f"null_text: {TARGET}", "null_text: reconstruction"]
    assert all(r.image.shape == (3, 24, 40) and torch.isfinite(r.image).all() for r in results)
    assert len(seen) == STEPS
    cond = model.encode_condition([SOURCE, TARGET])
    for i, kwargs in enumerate(seen):
        tokens, added = kwargs["encoder_hidden_states"], kwargs["added_cond_kwargs"]
        assert torch.equal(tokens[:2], artifact["null_embeddings"][i].expand(2, -1, -1))
        assert torch.equal(
            added["text_embeds"][:2], artifact["null_embeddings_pooled"][i].expand(2, -1)
        )
        assert torch.equal(tokens[2:], cond.tokens)
        assert torch.equal(added["text_embeds"][2:], cond.pooled)
        assert torch.equal(added["time_ids"], torch.tensor([[24.0, 40, 0, 0, 24, 40]] * 4))


def test_train_py_then_edit_py_and_the_refusals_across_families(trained, tmp_path):
    from editing_app.commands.edit import edit

    photo, ckpt = trained
    out = tmp_path / "out"

    def run(base_model, *extra):
        return edit(
            compose_config(
                "edit",
                [
                    f"base_model={base_model}",
                    "method=null_text_p2p",
                    f"checkpoint_dir={ckpt}",
                    f"output_dir={out}",
                    f"image={photo}",
                    "method.target_prompts=[a blue circle,a big red circle]",
                    *extra,
                ],
            )
        )

    assert run("tiny_sdxl", "method.equalizer={circle: 2.0}") == out / "edit.png"
    names = sorted(p.name for p in (out / "samples").iterdir())
    assert names == [
        "000_null_text_a_blue_circle.png",  # Replace (same token count), reweighted
        "001_null_text_a_big_red_circle.png",  # Refine (a word added), reweighted
        "002_null_text_reconstruction.png",
    ]
    assert Image.open(out / "samples" / names[0]).size == (40, 24)
    assert Image.open(out / "edit_full.png").size == (64, 48)
    # The SDXL artifact on an SD model: refused in one line, naming both families.
    with pytest.raises(UserInputError, match="made with an SDXL model") as err:
        run("tiny")
    assert "\n" not in str(err.value) and "use the base model it was made with" in str(err.value)


def test_an_sd_null_text_artifact_is_refused_on_sdxl(image_path, tmp_path, tiny_sdxl_model):
    from editing_app.commands.train import train

    ckpt = tmp_path / "sd"
    train(
        compose_config(
            "train",
            [
                *COMMON,
                "base_model=tiny",
                "stage=null_text",
                f"image={image_path}",
                f"source_prompt={SOURCE}",
                f"output_dir={ckpt}",
                "stage.num_inference_steps=2",
                "stage.num_inner_steps=1",
            ],
        )
    )
    editor = NullTextP2PEditor()
    inputs = Inputs(target_prompt=TARGET, checkpoint_dir=ckpt)
    with pytest.raises(UserInputError, match="made with an SD-type model") as err:
        apply_editor(editor, tiny_sdxl_model, inputs)
    assert "\n" not in str(err.value)


def test_optimising_the_null_pooled_lowers_the_step_loss(tiny_sdxl_model, tmp_path):
    """At one step: the null tokens and null pooled both move, and the guided step's loss with the
    optimised pair is below that with the "" pair it started from."""
    model = tiny_sdxl_model
    z0 = model.encode_image(_image(model, _wide_photo(tmp_path / "w.png")).pixels)
    schedule = make_schedule(model.scheduler, 5)
    cond = model.encode_condition([SOURCE])
    inv = invert(model, z0, cond, schedule)
    null = initial_null(model)
    start = null.detach().clone()
    assert isinstance(null, Conditioning) and len(null_parameters(null)) == 2
    optimizer = torch.optim.Adam(null_parameters(null), lr=1e-2)
    settings = NullTextSettings(num_inner_steps=5, early_stop=False)
    i = 2
    z_bar = inv.latents[len(schedule) - i]

    def loss(n):
        with torch.no_grad():
            eps = guided_eps(model, z_bar, schedule.timesteps[i], cond, n, settings.guidance_scale)
            z_prev = ddim_step(z_bar, eps, schedule.alphas[i], schedule.alphas_prev[i])
        return float(torch.nn.functional.mse_loss(z_prev, inv.target(i)))

    before = loss(start)
    result = optimize_step(
        model, i, schedule, z_bar, inv.target(i), cond, null, optimizer, settings
    )
    assert result.inner_steps == 5
    assert not torch.equal(null.pooled.detach(), start.pooled)
    assert not torch.equal(null.tokens.detach(), start.tokens)
    assert loss(null.detach()) < before


def test_the_null_pooled_lowers_the_reconstruction_error(tiny_sdxl_model, tmp_path, monkeypatch):
    """The whole inversion at w = 7.5, sampled back through `p2p_sample` (the editor's loop,
    identity controller): optimising the null pooled with the null tokens reconstructs z0 better
    than the null tokens alone (the pooled kept at ""), which beats plain DDIM inversion sampled
    with the "" condition (measured: 2.62 < 2.85 < 4.68, mean squared error on the latent)."""
    import editing.inversion.null_text as null_text

    model = tiny_sdxl_model
    z0 = model.encode_image(_image(model, _wide_photo(tmp_path / "w.png")).pixels)
    n, w = 4, 7.5
    settings = NullTextSettings(num_inner_steps=10, early_stop=False)

    def error(uncond):
        rec = p2p_sample(model, result.x_T, [SOURCE], None, result.schedule, w, uncond)
        return float((rec - z0).pow(2).mean())

    result = null_text_inversion(model, z0, SOURCE, n, settings)
    assert result.uncond.tokens.shape == (n, 77, 48) and result.uncond.pooled.shape == (n, 32)
    both, ddim = error(result.uncond), error(None)
    monkeypatch.setattr(null_text, "null_parameters", lambda null: [null.tokens])
    tokens_only = null_text_inversion(model, z0, SOURCE, n, settings)
    assert not tokens_only.uncond.pooled.any()  # the ablation kept the "" pooled (zeros)
    assert both < error(tokens_only.uncond) < ddim


def test_p2p_sample_with_the_identity_controller_is_guided_ddim_bit_for_bit(tiny_sdxl_model):
    """No controller: exactly classifier-free-guided DDIM with per-step (tokens, pooled) nulls."""
    model = tiny_sdxl_model
    schedule = make_schedule(model.scheduler, 4)
    x_T = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    nulls = Conditioning(torch.randn(4, 77, 48, generator=g), torch.randn(4, 32, generator=g))
    got = p2p_sample(model, x_T, [SOURCE], None, schedule, 7.5, nulls)
    cond = model.encode_condition([SOURCE])

    def eps(x, t, i):
        emb = Conditioning.cat([nulls[i : i + 1], cond])
        eps_u, eps_c = model.eps(torch.cat([x, x]), t, emb).chunk(2)
        return classifier_free_guidance(eps_u, eps_c, 7.5)

    step = iter(range(4))
    with torch.no_grad():
        expected = ddim_sample(x_T, lambda x, t: eps(x, t, next(step)), schedule)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("inversion", ["ddim", "negative_prompt"])
def test_optimisation_free_inversions_on_sdxl(inversion, tiny_sdxl_model, tmp_path):
    """Their nulls: the "" condition (zero tokens and pooled) or the source condition; replacing
    the source by itself reproduces the reconstruction."""
    model = tiny_sdxl_model
    photo = _wide_photo(tmp_path / "w.png")
    inputs = Inputs(image=_image(model, photo), source_prompt=SOURCE, target_prompt=SOURCE)
    seen = []
    handle = model.unet.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(kwargs["added_cond_kwargs"]["text_embeds"]),
        with_kwargs=True,
    )
    try:
        editor = NullTextP2PEditor(inversion=inversion, num_inference_steps=3, edit="replace")
        results = apply_editor(editor, model, inputs)
    finally:
        handle.remove()
    sampled = seen[-1]  # a sampling call: [null x 2; source, target]
    source = model.encode_condition([SOURCE]).pooled
    if inversion == "ddim":
        assert not sampled[:2].any()
    else:
        assert torch.equal(sampled[:2], source.expand(2, -1))
    torch.testing.assert_close(results[0].image, results[1].image, rtol=0, atol=1e-5)


def test_local_blend_on_the_sdxl_layout_at_a_non_square_latent(tiny_sdxl_model):
    model = tiny_sdxl_model
    assert cross_attention_scales(model.unet) == {"down": [0.5], "mid": [0.5], "up": [0.5]}
    prompts = [SOURCE, TARGET]
    blend = LocalBlend(prompts, model.tokenizer, ("red", "blue"), resolution=0.5, start=0.0)
    controller = AttentionReplace(prompts, model.tokenizer, local_blend=blend)
    schedule = make_schedule(model.scheduler, 3)
    x_T = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    out = p2p_sample(model, x_T, prompts, controller, schedule, 7.5)
    # Maps at 1/2 of the 3x5 latent: 2x3 (ceil), from the down and up cross-attention layers.
    assert {s.size for s in blend.store.sites.values()} == {(2, 3)}
    assert {s.place for s in blend.store.sites.values()} == {"down", "up"}
    assert blend.mask.shape == (1, 1, 3, 5)
    keep = ~blend.mask[0].expand(4, -1, -1)
    assert torch.equal(out[1][keep], out[0][keep])  # the source outside the mask, exactly
    # The reference's 1/4 does not exist on tiny_sdxl: refused before any inversion.
    editor = NullTextP2PEditor(inversion="ddim", blend_words="auto")
    with pytest.raises(UserInputError, match=r"blend_resolution=0.25 .*down: 0.5; mid: 0.5"):
        editor(model, Inputs(source_prompt=SOURCE, target_prompt=TARGET))


def test_word_positions_need_both_tokenizers_to_agree(tiny_sdxl_model):
    model = tiny_sdxl_model
    check_same_tokens(model.tokenizers, [SOURCE, "a fluffy zebra, on a sofa!"])
    other = build_clip_tokenizer(["a", "zebra"])  # "zebra" one token here, bytes in the model's
    check_same_tokens([model.tokenizer, other], ["a a a"])
    with pytest.raises(UserInputError, match="split the prompt 'a zebra' into different tokens"):
        check_same_tokens([model.tokenizer, other], ["a zebra"])


class Sites(AttentionController):
    """Records the site of every cross-attention call and changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.scales: dict[str, set[float]] = {}

    def wants(self, site) -> bool:
        if site.is_cross:
            self.scales.setdefault(site.place, set()).add(site.scale)
        return False


@pytest.mark.parametrize("name", ["tiny_sdxl_model", "tiny_model"])
def test_the_layout_read_from_the_config_is_the_one_the_processors_see(name, request):
    model = request.getfixturevalue(name)
    sites = Sites()
    x = torch.randn(2, 4, 6, 10, generator=torch.Generator().manual_seed(0))
    with attention_control(model.unet, sites), torch.no_grad():
        model.eps(x, 500, model.encode_condition(["a cat", ""]))
    scales = cross_attention_scales(model.unet)
    assert {p: set(s) for p, s in scales.items() if s} == sites.scales


def test_sdxl_base_cross_attention_sits_at_a_half_and_a_quarter():
    """SDXL 1.0 base's published block types (unet/config.json)."""
    config = SimpleNamespace(
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    )
    scales = cross_attention_scales(SimpleNamespace(config=config))
    assert scales == {"down": [0.5, 0.25], "mid": [0.25], "up": [0.5, 0.25]}


def test_global_mode_stores_the_pair_it_reports(tiny_sdxl_model, tmp_path):
    """null_mode=global on SDXL: one (tokens, pooled) pair for every step; sampling with the stored
    pair gives exactly the stage's final latent."""
    from helpers import fit_stage

    from lightning_modules.null_text import NullTextStage

    model = tiny_sdxl_model
    image = _image(model, _wide_photo(tmp_path / "w.png"))
    inputs = Inputs(image=image, source_prompt=SOURCE, output_dir=tmp_path, checkpoint_dir=tmp_path)
    stage = NullTextStage(
        model, inputs, num_inference_steps=3, num_inner_steps=2, null_mode="global"
    )
    fit_stage(stage, model, inputs, steps=100)
    tensors, meta = stage.artifact()
    assert meta["null_mode"] == "global" and meta["conditioning"] == "sdxl"
    null = Conditioning(tensors["null_embeddings"], tensors["null_embeddings_pooled"])
    assert null.tokens.shape == (1, 77, 48) and null.pooled.shape == (1, 32)
    assert null.pooled.abs().amin() > 0  # moved away from the zero "" pooled
    cond, x = model.encode_condition([SOURCE]), tensors["z_T"]
    with torch.no_grad():
        for _, t, a_t, a_prev in make_schedule(model.scheduler, 3).sampling():
            eps_c, eps_u = model.eps(x, t, cond), model.eps(x, t, null)
            x = ddim_step(x, classifier_free_guidance(eps_u, eps_c, 7.5), a_t, a_prev)
    assert torch.equal(x, stage.z_bar)


def test_a_checkpoint_keeps_the_pooled_state(tiny_sdxl_model, tmp_path):
    """What a Lightning checkpoint of the stage keeps (its trained and own tensors) includes the
    null pooled parameter, the per-step null pooled table and the source's pooled: a stage
    loaded from it exports the same artifact."""
    from helpers import fit_stage

    from lightning_modules.null_text import NullTextStage

    model = tiny_sdxl_model
    image = _image(model, _wide_photo(tmp_path / "w.png"))
    inputs = Inputs(image=image, source_prompt=SOURCE, output_dir=tmp_path, checkpoint_dir=tmp_path)

    def stage():
        return NullTextStage(model, inputs, num_inference_steps=2, num_inner_steps=1)

    trained = fit_stage(stage(), model, inputs, steps=100)
    kept = trained._kept_keys()
    assert {"null", "null_pooled", "null_embeddings_pooled", "cond_pooled"} <= kept
    state = {k: v for k, v in trained.state_dict().items() if k in kept}
    loaded = stage()
    loaded.load_state_dict(state, strict=False)
    for name, tensor in trained.artifact()[0].items():
        assert torch.equal(loaded.artifact()[0][name], tensor), name
