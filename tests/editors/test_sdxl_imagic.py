"""Imagic on SDXL (`base_model=tiny_sdxl`): the embedding is the pair (tokens, pooled), optimised,
stored and interpolated together; the fine-tune defaults to LoRA there; train.py -> artifact ->
edit.py end to end at a non-square working size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import compose_config, fit_stage
from PIL import Image

from demo_world.tiny_sdxl import build_tiny_sdxl
from editing.diffusion.conditioning import Conditioning
from editing.editors.imagic import artifact_embeddings, interpolate, sample_interpolations
from editing.io.artifacts import load_artifact, model_metadata, read_metadata
from editing.io.edit_inputs import Inputs
from editing.io.geometry import SizeRule
from editing.io.images import load_image
from lightning_modules.imagic import ImagicEmbedStage, ImagicFinetuneStage
from lightning_modules.unet_finetune import resolve_finetune_defaults

PROMPT = "a red circle"


@pytest.fixture
def wide_photo(tmp_path):
    """A 64x48 (4:3) photo: on tiny_sdxl a 40x24 working size."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    rgb[12:36, 16:44] = (30, 30, 200)
    path = tmp_path / "wide.png"
    Image.fromarray(rgb).save(path)
    return path


def _inputs(model, path, out):
    image = load_image(path, SizeRule.for_model(model))
    return Inputs(image=image, target_prompt=PROMPT, output_dir=out, checkpoint_dir=out, seed=0)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _embed(path, out, steps=2):
    model = build_tiny_sdxl()
    stage = ImagicEmbedStage(model, _inputs(model, path, out), num_steps=steps, lr=1e-2)
    fit_stage(stage, model, stage.inputs, steps)
    stage.export(out)
    return model, stage


def test_embed_stage_optimises_tokens_and_pooled_and_the_artifact_round_trips(wide_photo, tmp_path):
    model = build_tiny_sdxl()
    frozen = {
        n: _state(getattr(model, n)) for n in ("unet", "vae", "text_encoder", "text_encoder_2")
    }
    stage = ImagicEmbedStage(model, _inputs(model, wide_photo, tmp_path), num_steps=2, lr=1e-2)
    target = model.encode_condition([PROMPT])
    assert torch.equal(stage.e_tgt, target.tokens) and torch.equal(
        stage.e_tgt_pooled, target.pooled
    )
    fit_stage(stage, model, stage.inputs, 2)
    for name, state in frozen.items():
        assert _equal(state, _state(getattr(model, name))), f"{name} changed"
    # both parts of the embedding moved; the target stayed
    assert not torch.equal(stage.e_opt.detach(), target.tokens)
    assert not torch.equal(stage.e_opt_pooled.detach(), target.pooled)
    assert torch.equal(stage.e_tgt_pooled, target.pooled)
    assert stage.e_opt.dtype == stage.e_opt_pooled.dtype == torch.float32
    path = stage.export(tmp_path)
    artifact = load_artifact(path, "imagic_embed", expect=model_metadata(model))
    P = model.pooled_dim
    assert tuple(artifact["e_opt_pooled"].shape) == (1, P) == tuple(artifact["e_tgt_pooled"].shape)
    e_tgt, e_opt = artifact_embeddings(artifact, model)
    assert isinstance(e_opt, Conditioning) and e_opt.time_ids is None
    assert torch.equal(e_opt.tokens, stage.e_opt.detach())
    assert torch.equal(e_opt.pooled, stage.e_opt_pooled.detach())
    assert torch.equal(e_tgt.pooled, target.pooled)
    h, w = stage.inputs.image.size
    assert h != w and read_metadata(path)["sdxl_time_ids"] == f"{h},{w},0,0,{h},{w}"


def test_an_embedding_artifact_without_the_pooled_part_is_refused(wide_photo, tmp_path):
    from editing.errors import UserInputError
    from editing.io.artifacts import save_artifact

    model, stage = _embed(wide_photo, tmp_path)
    artifact = load_artifact(tmp_path / "imagic_embed.safetensors", "imagic_embed")
    del artifact.tensors["e_opt_pooled"]
    save_artifact(tmp_path / "imagic_embed.safetensors", artifact.tensors, artifact.metadata)
    with pytest.raises(UserInputError, match="has no tensor 'e_opt_pooled'"):
        ImagicFinetuneStage(model, stage.inputs, num_steps=2)


def test_lr_null_is_refused_outside_fine_tunes(wide_photo, tmp_path):
    from editing.errors import UserInputError
    from editing_app.validation import validate_config

    cfg = compose_config("train", ["stage=null_text", "stage.lr=null", f"output_dir={tmp_path}"])
    with pytest.raises(UserInputError, match="stage.lr needs a value, got null"):
        validate_config(cfg)
    validate_config(
        compose_config(
            "train", ["stage=imagic", "stage.finetune.lr=null", f"output_dir={tmp_path}"]
        )
    )


def test_interpolation_ends_are_the_two_embeddings_on_both_fields():
    g = torch.Generator().manual_seed(0)
    e_tgt = Conditioning(torch.randn(1, 77, 48, generator=g), torch.randn(1, 32, generator=g))
    e_opt = Conditioning(torch.randn(1, 77, 48, generator=g), torch.randn(1, 32, generator=g))
    for eta, expected in ((0.0, e_opt), (1.0, e_tgt)):
        e_bar = interpolate(e_tgt, e_opt, eta)
        assert torch.equal(e_bar.tokens, expected.tokens)
        assert torch.equal(e_bar.pooled, expected.pooled)
    half = interpolate(e_tgt, e_opt, 0.5)
    torch.testing.assert_close(half.pooled, (e_tgt.pooled + e_opt.pooled) / 2)
    assert torch.equal(
        interpolate(e_tgt.tokens, e_opt.tokens, 0.3), 0.3 * e_tgt.tokens + 0.7 * e_opt.tokens
    )


def test_the_fine_tune_mode_default_is_lora_on_sdxl_only(tiny_model, tiny_sdxl_model):
    assert resolve_finetune_defaults(tiny_model, "auto", None) == ("full", 5e-7)
    assert resolve_finetune_defaults(tiny_sdxl_model, "auto", None) == ("lora", 1e-4)
    assert resolve_finetune_defaults(tiny_sdxl_model, "full", None) == ("full", 5e-7)
    assert resolve_finetune_defaults(tiny_sdxl_model, "auto", 3e-5) == ("lora", 3e-5)


def test_a_two_step_lora_fine_tune_changes_only_adapter_weights(wide_photo, tmp_path):
    _embed(wide_photo, tmp_path)
    model = build_tiny_sdxl()
    frozen = {n: _state(getattr(model, n)) for n in ("vae", "text_encoder", "text_encoder_2")}
    unet_before = _state(model.unet)
    stage = ImagicFinetuneStage(model, _inputs(model, wide_photo, tmp_path), num_steps=2)
    assert stage.finetune_mode == "lora" and stage.lr == 1e-4  # the SDXL default
    e_opt, e_opt_pooled = stage.e_opt.clone(), stage.e_opt_pooled.clone()
    lora_before = {k: v for k, v in _state(stage.model.unet).items() if "lora" in k}
    seen = []
    handle = stage.model.unet.register_forward_pre_hook(
        lambda _m, _a, kwargs: seen.append(kwargs["added_cond_kwargs"]["text_embeds"]),
        with_kwargs=True,
    )
    try:
        fit_stage(stage, model, stage.inputs, 2)
    finally:
        handle.remove()
    assert len(seen) == 2 and all(torch.equal(p, e_opt_pooled) for p in seen)  # batch 1
    for name, state in frozen.items():
        assert _equal(state, _state(getattr(model, name))), f"{name} changed"
    assert _equal(unet_before, _state(model.unet)), "the base model object must never be mutated"
    assert torch.equal(stage.e_opt, e_opt) and torch.equal(stage.e_opt_pooled, e_opt_pooled)
    after = _state(stage.model.unet)
    base_after = {k.replace(".base_layer", ""): v for k, v in after.items() if "lora" not in k}
    assert lora_before and _equal(unet_before, base_after)  # the base weights, bit for bit
    assert not _equal(lora_before, {k: after[k] for k in lora_before})  # the adapters trained
    tensors, metadata = stage.artifact()
    assert torch.equal(tensors["e_opt_pooled"], e_opt_pooled)
    assert metadata["finetune_mode"] == "lora"
    previews = stage.preview(
        1
    )  # what the preview callback shows: eta 0, 0.7, 1 at the working size
    assert [label for label, _ in previews] == ["eta=0", "eta=0.7", "eta=1"]
    assert all(tuple(img.shape[-2:]) == stage.inputs.image.size for _, img in previews)
    assert all(k.startswith(("e_", "lora.")) for k in tensors)  # no full UNet weights


@pytest.mark.parametrize("mode", ["auto", "full"])
def test_train_py_then_edit_py_on_sdxl(mode, wide_photo, tmp_path, tiny_sdxl_model):
    from editing_app.commands import edit, train

    ckpt = tmp_path / "ckpt"
    paths = train.train(
        compose_config(
            "train",
            [
                "stage=imagic",
                "base_model=tiny_sdxl",
                f"image={wide_photo}",
                f"target_prompt={PROMPT}",
                f"output_dir={ckpt}",
                "stage.embed.num_steps=2",
                "stage.finetune.num_steps=2",
                f"stage.finetune.finetune_mode={mode}",
                "trainer=cpu",
                "callbacks=none",
                "logger=none",
            ],
        )
    )
    assert [p.name for p in paths] == ["imagic_embed.safetensors", "imagic_finetune.safetensors"]
    tuned = load_artifact(ckpt / "imagic_finetune.safetensors", "imagic_finetune")
    expected = {"auto": ("lora", 1e-4, "lora."), "full": ("full", 5e-7, "unet.")}[mode]
    hparams = tuned.hparams
    assert (hparams["finetune_mode"], hparams["lr"]) == expected[:2]
    assert tuned.metadata["conditioning"] == "sdxl"
    assert any(k.startswith(expected[2]) for k in tuned.tensors)
    embed = load_artifact(ckpt / "imagic_embed.safetensors", "imagic_embed")
    assert torch.equal(tuned["e_opt_pooled"], embed["e_opt_pooled"])  # step B's condition is A's
    h, w = SizeRule.for_model(tiny_sdxl_model).plan((64, 48)).size
    # the edit from the fine-tune, and from the embedding alone (method.finetuned=false)
    for finetuned in ("true", "false"):
        out = tmp_path / f"out_{finetuned}"
        cfg = compose_config(
            "edit",
            [
                "method=imagic",
                "base_model=tiny_sdxl",
                f"image={wide_photo}",
                f"checkpoint_dir={ckpt}",
                f"output_dir={out}",
                "method.eta=[0.0,1.0]",
                "method.seeds=[0]",
                "method.num_inference_steps=2",
                f"method.finetuned={finetuned}",
            ],
        )
        assert edit.edit(cfg) == out / "edit.png"
        assert Image.open(out / "edit.png").size == (w, h) and w > h


def test_sampling_from_the_embeddings_batches_their_pooled_parts(wide_photo, tmp_path):
    model, stage = _embed(wide_photo, tmp_path)
    seen = []
    handle = model.unet.register_forward_pre_hook(
        lambda _m, _a, kwargs: seen.append(kwargs["added_cond_kwargs"]["text_embeds"]),
        with_kwargs=True,
    )
    try:
        e_tgt, e_opt = stage.target(), stage.condition().detach()
        images = sample_interpolations(
            model, e_tgt, e_opt, [0.0, 1.0], [0], 1, 5.0, size=stage.inputs.image.size
        )
    finally:
        handle.remove()
    assert [tuple(img.shape[-2:]) for _, _, img in images] == [stage.inputs.image.size] * 2
    pooled = seen[0]  # [uncond x 2; eta=0; eta=1]
    assert not pooled[:2].any()
    assert torch.equal(pooled[2:], torch.cat([e_opt.pooled, e_tgt.pooled]))


def test_sd_models_keep_plain_token_embeddings(tiny_model, image_path, tmp_path):
    inputs = Inputs(
        image=load_image(image_path, 32), target_prompt=PROMPT, output_dir=tmp_path, seed=0
    )
    stage = ImagicEmbedStage(tiny_model, inputs, num_steps=1)
    assert stage.e_opt_pooled is None and isinstance(stage.condition(), torch.Tensor)
    assert "e_opt_pooled" not in stage.state_dict()
    tensors, _ = stage.artifact()
    assert sorted(tensors) == ["e_opt", "e_tgt"]
