"""Training contracts of the Imagic stages: what changes, what is exported, what repeats."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import TINY_CLIP, fit_stage

from demo_world.tiny import build_tiny_model
from editing.editors.imagic import interpolate
from editing.io.artifacts import load_artifact, model_metadata
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing.models.unet_weights import finetuned_unet
from lightning_modules.imagic import ImagicEmbedStage, ImagicFinetuneStage


def _inputs(image_path, out, seed=0):
    return Inputs(
        image=load_image(image_path, 32),
        target_prompt="a red circle",
        output_dir=out,
        checkpoint_dir=out,
        seed=seed,
    )


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _embed(image_path, out, steps=3, lr=1e-2, seed=0):
    model = build_tiny_model()
    stage = ImagicEmbedStage(model, _inputs(image_path, out, seed), num_steps=steps, lr=lr)
    fit_stage(stage, model, stage.inputs, steps)
    stage.export(out)
    return model, stage


def test_embed_stage_changes_only_the_embedding(image_path, tmp_path):
    model = build_tiny_model()
    before = {name: _state(getattr(model, name)) for name in ("unet", "vae", "text_encoder")}
    stage = ImagicEmbedStage(model, _inputs(image_path, tmp_path), num_steps=3, lr=1e-2)
    e_tgt = stage.e_tgt.clone()
    fit_stage(stage, model, stage.inputs, 3)
    for name, state in before.items():
        assert _equal(state, _state(getattr(model, name))), f"{name} changed"
    assert torch.equal(stage.e_tgt, e_tgt)
    assert not torch.equal(stage.e_opt.detach(), e_tgt)
    assert stage.e_opt.dtype == torch.float32


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_finetune_stage_changes_only_the_unet(image_path, tmp_path, mode):
    _embed(image_path, tmp_path)
    model = build_tiny_model()
    frozen = {name: _state(getattr(model, name)) for name in ("vae", "text_encoder")}
    unet_before = _state(model.unet)
    stage = ImagicFinetuneStage(
        model, _inputs(image_path, tmp_path), num_steps=3, lr=1e-3, finetune_mode=mode
    )
    e_opt = stage.e_opt.clone()
    fit_stage(stage, model, stage.inputs, 3)
    for name, state in frozen.items():
        assert _equal(state, _state(getattr(model, name))), f"{name} changed"
    assert torch.equal(stage.e_opt, e_opt)
    assert _equal(unet_before, _state(model.unet)), "the base model object must never be mutated"
    after = _state(stage.model.unet)
    if mode == "full":
        assert not _equal(unet_before, after)
    else:  # base weights untouched, only LoRA tensors moved
        base_keys = [k for k in after if "lora" not in k]
        base_after = {k.replace(".base_layer", ""): after[k] for k in base_keys}
        assert _equal(unet_before, base_after)
        lora_keys = [k for k in after if "lora_B" in k]
        assert lora_keys and any(
            not torch.equal(after[k], torch.zeros_like(after[k])) for k in lora_keys
        )
    tensors, meta = stage.artifact()
    if mode == "lora":
        assert (
            all(k.startswith(("lora.", "e_")) for k in tensors) and meta["finetune_mode"] == "lora"
        )
        assert sum(v.numel() for k, v in tensors.items() if k.startswith("lora.")) < 0.1 * sum(
            p.numel() for p in model.unet.parameters()
        )


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_exported_weights_reproduce_the_trained_unet(image_path, tmp_path, mode):
    _embed(image_path, tmp_path)
    model = build_tiny_model()
    stage = ImagicFinetuneStage(
        model, _inputs(image_path, tmp_path), num_steps=2, lr=1e-3, finetune_mode=mode
    )
    fit_stage(stage, model, stage.inputs, 2)
    path = stage.export(tmp_path)
    artifact = load_artifact(path, "imagic_finetune", expect=model_metadata(model))
    base = build_tiny_model()
    base_before = _state(base.unet)
    applied = finetuned_unet(base.unet, artifact.tensors, artifact.metadata)
    assert _equal(base_before, _state(base.unet))  # the base UNet is never mutated
    x = torch.randn(1, *model.latent_shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500])
    with torch.no_grad():
        want = stage.model.unet.eval()(x, t, encoder_hidden_states=stage.e_opt).sample
        got = applied(x, t, encoder_hidden_states=stage.e_opt).sample
    if mode == "full":
        assert torch.equal(want, got)
    else:  # fused LoRA: the same function up to float rounding of the merge
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_same_seed_gives_bit_identical_artifacts(image_path, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _embed(image_path, a, seed=0)
    _embed(image_path, b, seed=0)
    _embed(image_path, c, seed=1)
    # (the safetensors header orders metadata keys arbitrarily, so compare contents, not bytes)
    ra, rb, rc = (load_artifact(d / "imagic_embed.safetensors", "imagic_embed") for d in (a, b, c))
    assert ra.metadata == rb.metadata
    assert ra.tensors.keys() == rb.tensors.keys()
    for key in ra.tensors:
        assert torch.equal(ra[key], rb[key]), key
    assert not torch.equal(ra["e_opt"], rc["e_opt"])


def test_eta_selects_the_embeddings_exactly():
    g = torch.Generator().manual_seed(0)
    e_tgt, e_opt = torch.randn(1, 4, 8, generator=g), torch.randn(1, 4, 8, generator=g)
    assert torch.equal(interpolate(e_tgt, e_opt, 0.0), e_opt)
    assert torch.equal(interpolate(e_tgt, e_opt, 1.0), e_tgt)
    torch.testing.assert_close(interpolate(e_tgt, e_opt, 1.5), 1.5 * e_tgt - 0.5 * e_opt)


def test_bf16_mixed_on_cpu_keeps_the_embedding_fp32(image_path, tmp_path):
    model = build_tiny_model()
    stage = ImagicEmbedStage(model, _inputs(image_path, tmp_path), num_steps=2, lr=1e-2)
    start = stage.e_opt.detach().clone()
    fit_stage(stage, model, stage.inputs, 2, precision="bf16-mixed")
    assert stage.e_opt.dtype == torch.float32
    assert not torch.equal(stage.e_opt.detach(), start)
    tensors, _ = stage.artifact()
    assert tensors["e_opt"].dtype == torch.float32


def test_finetune_refuses_an_embedding_of_another_image_or_model(image_path, tmp_path):
    from editing.errors import UserInputError

    _embed(image_path, tmp_path)
    other = copy.copy(_inputs(image_path, tmp_path))
    other.target_prompt = "a blue square"
    with pytest.raises(UserInputError, match="target_prompt: artifact has 'a red circle'"):
        ImagicFinetuneStage(build_tiny_model(), other, num_steps=1)
    with pytest.raises(UserInputError, match="base model"):
        ImagicFinetuneStage(build_tiny_model(seed=1), _inputs(image_path, tmp_path), num_steps=1)
    with pytest.raises(UserInputError, match="no imagic_embed artifact .* stage=imagic_embed"):
        ImagicFinetuneStage(
            build_tiny_model(), _inputs(image_path, tmp_path / "empty"), num_steps=1
        )


def test_select_clip_lpips_writes_the_best_sample_first(image_path, tmp_path):
    """method.select=clip_lpips: the samples of every (eta, seed) ordered by CLIP similarity to
    the target text minus LPIPS to the input, the best first, each score in its params."""
    from editing.editors.imagic import ImagicEditor
    from editing.models.clip import build_clip, save_clip

    model, _ = _embed(image_path, tmp_path, steps=2)
    torch.manual_seed(0)
    clip_dir = str(save_clip(build_clip(TINY_CLIP), tmp_path / "clip"))
    inputs = _inputs(image_path, tmp_path)
    common = {"finetuned": False, "num_inference_steps": 2, "eta": [0.5, 0.9]}
    assert ImagicEditor().seeds == [0, 1, 2, 3] and ImagicEditor().select == "none"
    plain = ImagicEditor(**common)(model, inputs)
    assert len(plain) == 8 and "select_score" not in plain[0].params
    editor = ImagicEditor(select="clip_lpips", clip_path=clip_dir, **common)
    ranked = editor(model, inputs)
    scores = [r.params["select_score"] for r in ranked]
    assert [r.params["rank"] for r in ranked] == list(range(1, 9))
    assert scores == sorted(scores, reverse=True)
    expected = editor.selection_scores(
        torch.stack([r.image for r in plain]), inputs.image.pixels, "a red circle"
    )
    best = int(expected["select_score"].argmax())
    assert torch.equal(ranked[0].image, plain[best].image)
    assert ranked[0].params["seed"] == plain[best].params["seed"]
    assert ranked[0].params["eta"] == plain[best].params["eta"]
    for name in ("select_score", "clip_score", "lpips"):
        assert ranked[0].params[name] == pytest.approx(float(expected[name][best]))
    p = ranked[0].params
    assert p["select_score"] == pytest.approx(p["clip_score"] - p["lpips"])
