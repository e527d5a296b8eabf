"""SDXL on `base_model=tiny_sdxl`: the condition (both encoders, pooled, time ids) against diffusers'
own SDXL pipeline, classifier-free guidance over every field, the SD paths unchanged, loading from a
folder and a hub id, the fp32 VAE and a replacement VAE."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_config

from editing.diffusion.cfg import guided_eps
from editing.diffusion.conditioning import Conditioning
from editing.diffusion.sampling import sample
from editing.errors import UserInputError
from editing.io.geometry import SizeRule
from editing.models.loading import load_model, save_model
from editing.models.sdxl import SDXLModel, size_time_ids


def _pipeline(model: SDXLModel):
    from diffusers import StableDiffusionXLPipeline

    return StableDiffusionXLPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        text_encoder_2=model.text_encoder_2,
        tokenizer=model.tokenizer,
        tokenizer_2=model.tokenizer_2,
        unet=model.unet,
        scheduler=model.scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


@pytest.fixture(scope="module")
def model(tiny_sdxl_model) -> SDXLModel:
    return tiny_sdxl_model


def _unet_kwargs(model):
    """Records the keyword arguments of every UNet call inside the block."""
    seen = []
    handle = model.unet.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append((args, kwargs)), with_kwargs=True
    )
    return seen, handle


def test_the_condition_is_the_diffusers_pipelines(model):
    pipe = _pipeline(model)
    tokens, neg_tokens, pooled, neg_pooled = pipe.encode_prompt(
        "a red square", device="cpu", do_classifier_free_guidance=True
    )
    cond, uncond = model.encode_condition(["a red square"]), model.encode_condition([""])
    assert cond.tokens.shape == (1, 77, 48) and cond.pooled.shape == (1, 32)
    assert torch.equal(cond.tokens, tokens) and torch.equal(cond.pooled, pooled)
    # SDXL's unconditional condition: zeros (force_zeros_for_empty_prompt), tokens and pooled.
    assert torch.equal(uncond.tokens, neg_tokens) and torch.equal(uncond.pooled, neg_pooled)
    assert not uncond.tokens.any() and not uncond.pooled.any()
    assert torch.equal(model.encode_prompt(["a red square"]), cond.tokens)
    ids = pipe._get_add_time_ids((32, 48), (0, 0), (32, 48), torch.float32, 32)
    assert torch.equal(size_time_ids((32, 48)), ids)


def test_sampling_is_the_diffusers_sdxl_pipelines(model):
    # The project's guided DDIM loop and diffusers' SDXL pipeline (same DDIM scheduler) agree,
    # at a non-square size (the time ids) with guidance (the zero unconditional condition).
    x_T = torch.randn(1, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    pipe = _pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        "a red square",
        height=32,
        width=48,
        num_inference_steps=4,
        guidance_scale=5.0,
        latents=x_T.clone(),
        output_type="latent",
    ).images
    ours = sample(model, model.encode_condition(["a red square"]), x_T, 4, 5.0)
    assert torch.equal(ours, ref)  # the same operations on the same tensors, bit for bit


def test_guidance_batches_tokens_pooled_and_time_ids_together(model):
    cond, uncond = (
        model.encode_condition(["a red square", "a blue circle"]),
        model.encode_condition([""]),
    )
    x = torch.randn(2, 4, 8, 12, generator=torch.Generator().manual_seed(1))
    seen, handle = _unet_kwargs(model)
    try:
        eps = guided_eps(model, x, 500, cond, uncond, 4.0)
    finally:
        handle.remove()
    assert len(seen) == 1  # one UNet call for [uncond; cond]
    args, kwargs = seen[0]
    assert args[0].shape[0] == 4
    added = kwargs["added_cond_kwargs"]
    assert torch.equal(added["text_embeds"], torch.cat([uncond.pooled.expand(2, -1), cond.pooled]))
    assert torch.equal(added["time_ids"], torch.tensor([[32.0, 48, 0, 0, 32, 48]] * 4))
    with torch.no_grad():
        both = model.unet(
            torch.cat([x, x]),
            torch.tensor([500] * 4),
            encoder_hidden_states=torch.cat([uncond.tokens.expand(2, -1, -1), cond.tokens]),
            added_cond_kwargs=added,
        ).sample
    eps_u, eps_c = both.chunk(2)
    assert torch.equal(eps, eps_u + 4.0 * (eps_c - eps_u))
    # Time ids carried by the condition win over the working size.
    own = Conditioning(cond.tokens, cond.pooled, torch.tensor([[64.0, 96, 4, 8, 32, 48]] * 2))
    assert not torch.equal(model.eps(x, 500, own), model.eps(x, 500, cond))


def test_sd_paths_pass_the_same_tensors(tiny_model):
    # A Conditioning of token embeddings alone is the old tensor path, to the bit.
    cond, uncond = tiny_model.encode_prompt(["a red square"]), tiny_model.encode_prompt([""])
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    plain = guided_eps(tiny_model, x, 400, cond.expand(2, -1, -1), uncond, 7.5)
    wrapped = guided_eps(
        tiny_model, x, 400, Conditioning(cond).expand(2), Conditioning(uncond), 7.5
    )
    assert torch.equal(plain, wrapped)
    assert torch.equal(tiny_model.encode_condition(["a red square"]).tokens, cond)
    with pytest.raises(UserInputError, match="token embeddings only"):
        tiny_model.eps(x[:1], 400, Conditioning(cond, torch.zeros(1, 32)))


def test_an_sdxl_model_refuses_token_embeddings_alone(model):
    with pytest.raises(UserInputError, match="needs the pooled text embedding"):
        model.eps(torch.zeros(1, 4, 8, 8), 10, model.encode_prompt(["a cat"]))


def test_size_rule_and_identity(model, tiny_model):
    assert model.size_multiple == 8  # VAE factor 4 x 2 UNet levels (real SDXL: 8 x 4 = 32)
    height, width = SizeRule.for_model(model).plan((64, 48)).size  # a 4:3 photo
    assert height % 8 == 0 and width % 8 == 0 and width > height
    assert model.identity != tiny_model.identity
    assert model.conditioning_kind == "sdxl" and tiny_model.conditioning_kind == "text"


def test_folder_round_trip_with_an_fp32_vae(model, tmp_path):
    folder = save_model(model, tmp_path / "sdxl")
    assert (folder / "text_encoder_2").is_dir() and (folder / "tokenizer_2").is_dir()
    loaded = load_model(str(folder), name=model.name)
    assert isinstance(loaded, SDXLModel) and loaded.identity == model.identity
    for mine, theirs in zip(loaded.parameters(), model.parameters()):
        assert torch.equal(mine, theirs)
    # Same weights; the float results may differ in the last bits only (memory alignment of
    # the loaded tensors changes the CPU kernels' paths).
    a, b = loaded.encode_condition(["a red square"]), model.encode_condition(["a red square"])
    torch.testing.assert_close(a.tokens, b.tokens, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.pooled, b.pooled, rtol=0, atol=1e-6)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(loaded.eps(x, 300, b), model.eps(x, 300, b), rtol=0, atol=1e-6)
    # Half-precision weights keep the VAE in fp32 (SDXL's VAE overflows in fp16) ...
    half = load_model(str(folder), name=model.name, dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and half.vae.dtype == torch.float32
    assert half.text_encoder_2.dtype == torch.bfloat16
    # ... unless asked otherwise.
    assert (
        load_model(str(folder), dtype="bfloat16", vae_dtype="bfloat16").vae.dtype == torch.bfloat16
    )


def test_a_replacement_vae(model, tmp_path):
    from diffusers import AutoencoderKL

    folder = save_model(model, tmp_path / "sdxl")
    other = AutoencoderKL.from_config(model.vae.config)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    other.save_pretrained(tmp_path / "vae")
    loaded = load_model(str(folder), name=model.name, dtype="float16", vae=str(tmp_path / "vae"))
    assert loaded.vae.dtype == torch.float32
    for mine, theirs in zip(loaded.vae.parameters(), other.parameters()):
        assert torch.equal(mine, theirs)
    # A model folder with vae/ works too; anything else is one clear error.
    again = load_model(str(folder), vae=str(folder)).vae
    assert all(torch.equal(p, q) for p, q in zip(again.parameters(), model.vae.parameters()))
    with pytest.raises(UserInputError, match="neither a VAE folder"):
        load_model(str(folder), vae=str(folder / "unet"))


def test_hub_id_resolves_through_the_local_cache(model, tmp_path, monkeypatch):
    import huggingface_hub._snapshot_download as sd
    import huggingface_hub.constants as hc

    cache = tmp_path / "hub"
    repo = cache / "models--owner--tiny-sdxl"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    save_model(model, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(snapshot.name)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    if hasattr(sd, "HF_HUB_CACHE"):
        monkeypatch.setattr(sd, "HF_HUB_CACHE", str(cache))
    loaded = load_model("owner/tiny-sdxl", name=model.name)
    assert isinstance(loaded, SDXLModel) and loaded.identity == model.identity


def test_the_configs_build_it():
    import hydra

    cfg = compose_config("edit", ["base_model=tiny_sdxl", "method=direct_inversion"])
    built = hydra.utils.instantiate(cfg.base_model)
    assert isinstance(built, SDXLModel) and built.vae.dtype == torch.float32
    sdxl = compose_config("edit", ["base_model=sdxl"]).base_model
    assert sdxl.path == "stabilityai/stable-diffusion-xl-base-1.0" and sdxl.resolution == 1024
    assert sdxl.vae_dtype == "float32" and sdxl.vae is None


def test_a_folder_that_keeps_the_empty_prompt_encoded_loads_so(model, tmp_path):
    """model_index.json's force_zeros_for_empty_prompt=false is read back (absent: true)."""
    import json

    from editing.models.sdxl import force_zeros_flag

    folder = save_model(model, tmp_path / "sdxl")
    assert force_zeros_flag(folder) is True
    index = folder / "model_index.json"
    flags = json.loads(index.read_text())
    index.write_text(json.dumps({**flags, "force_zeros_for_empty_prompt": False}))
    loaded = load_model(str(folder), name=model.name)
    assert loaded.force_zeros_for_empty_prompt is False
    empty = loaded.encode_condition([""])
    assert empty.tokens.any() and empty.pooled.any()  # "" encoded, not zeros
    assert loaded.identity != model.identity  # an artifact of one is refused by the other
    flags.pop("force_zeros_for_empty_prompt", None)
    index.write_text(json.dumps(flags))
    assert force_zeros_flag(folder) is True


def test_the_artifacts_time_ids_are_those_the_unet_is_given(model):
    """`sdxl_time_ids` (artifact metadata) names the numbers of the UNet call at that size."""
    from editing.io.artifacts import sdxl_time_ids

    cond = model.encode_condition(["a red square"])
    for latent_hw in ((8, 12), (10, 6)):
        x = torch.zeros(1, 4, *latent_hw)
        seen, handle = _unet_kwargs(model)
        try:
            model.eps(x, 500, cond)
        finally:
            handle.remove()
        given = seen[0][1]["added_cond_kwargs"]["time_ids"][0].tolist()
        size = tuple(v * model.vae_scale_factor for v in latent_hw)
        assert sdxl_time_ids(size) == ",".join(str(int(v)) for v in given)
