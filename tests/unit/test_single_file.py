"""A real single-file (original LDM layout) checkpoint loads through `load_model(file, config=)`.

The tiny model is saved as a diffusers folder (its configs), its weights are written as one
`.safetensors` and one `.ckpt` in the layout of the original Stable Diffusion checkpoints
(`tests/ldm_layout.py`), and the file is loaded back through diffusers'
`StableDiffusionPipeline.from_single_file`. The tiny architecture (2-level UNet with
cross-attention in the first down / last up block and the middle, 3-level VAE, 2-layer CLIP) is
handled as is: diffusers takes the block structure from the config folder, not from SD 1.x.

Outputs are compared with zero tolerance: the loaded tensors are the original ones bit for bit
(checked directly), the module classes and configs are the same and the run is single-threaded on
CPU, so every operation sees the same inputs in the same order.
"""

from __future__ import annotations

import pytest
import torch
from ldm_layout import (
    CLIP_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    save_ckpt,
    save_safetensors,
    to_ldm_checkpoint,
)

from demo_world.tiny import build_tiny_model, tiny_components
from editing.errors import UserInputError
from editing.models.loading import load_model, save_model

PROMPTS = ["a red circle", "a photo of a cat"]


@pytest.fixture(scope="module")
def source(request, tmp_path_factory):
    """(tiny model, its config folder, its LDM checkpoint dict, a scratch folder).

    An epsilon model unless a test parametrizes `source` indirectly with a prediction type.
    """
    prediction_type = getattr(request, "param", "epsilon")
    model = build_tiny_model(prediction_type=prediction_type)
    root = tmp_path_factory.mktemp(f"single-{prediction_type}")
    folder = save_model(model, root / "configs")
    ckpt = to_ldm_checkpoint(model.unet, model.vae, model.text_encoder)
    return model, folder, ckpt, root


def _same_weights(loaded, original) -> None:
    a, b = loaded.state_dict(), original.state_dict()
    assert a.keys() == b.keys()
    for key in b:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def _same_outputs(loaded, model) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, *model.latent_shape, generator=g)
    img = torch.rand(2, 3, model.resolution, model.resolution, generator=g) * 2 - 1
    emb = model.encode_prompt(PROMPTS)
    assert torch.equal(loaded.encode_prompt(PROMPTS), emb)
    for t in (500, torch.tensor([100, 900])):
        torch.testing.assert_close(loaded.eps(x, t, emb), model.eps(x, t, emb), rtol=0, atol=0)
    torch.testing.assert_close(loaded.encode_image(img), model.encode_image(img), rtol=0, atol=0)
    torch.testing.assert_close(loaded.decode(x), model.decode(x), rtol=0, atol=0)


def test_converted_checkpoint_has_the_original_layout(source):
    model, _, ckpt, _ = source
    keys = set(ckpt)
    # the keys diffusers uses to recognise an SD 1.x file and its parts
    assert f"{CLIP_PREFIX}text_model.embeddings.position_embedding.weight" in keys
    for key in (
        "input_blocks.0.0.weight",  # conv_in
        "input_blocks.1.0.in_layers.2.weight",  # down 0, resnet 0, conv1
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",  # down 0, cross-attention
        "input_blocks.2.0.op.weight",  # down 0 downsampler
        "input_blocks.3.0.skip_connection.weight",  # down 1, resnet 0 (32 -> 64 channels)
        "middle_block.1.proj_in.weight",
        "middle_block.2.emb_layers.1.weight",
        "output_blocks.1.1.conv.weight",  # up 0 (no attention) upsampler
        "output_blocks.3.1.proj_out.weight",  # up 1, attention 1
        "out.2.weight",  # conv_out
    ):
        assert UNET_PREFIX + key in keys, key
    for key in (
        "encoder.down.0.block.0.conv1.weight",
        "encoder.down.1.block.0.nin_shortcut.weight",
        "encoder.down.1.downsample.conv.weight",
        "decoder.up.2.upsample.conv.weight",  # diffusers up_blocks.0 (lowest resolution)
        "decoder.up.0.block.1.conv2.weight",  # decoder: layers_per_block + 1 resnets
        "encoder.norm_out.weight",
        "post_quant_conv.weight",
    ):
        assert VAE_PREFIX + key in keys, key
    for part in ("q", "k", "v", "proj_out"):  # 1x1 convolutions in LDM, linear in diffusers
        assert ckpt[f"{VAE_PREFIX}decoder.mid.attn_1.{part}.weight"].shape == (32, 32, 1, 1)
    n_weights = sum(len(m.state_dict()) for m in (model.unet, model.vae, model.text_encoder))
    assert len(ckpt) == n_weights + 1  # + the text encoder's position_ids, as SD 1.x files have


def test_diffusers_converters_invert_the_layout(source):
    """diffusers' own LDM -> diffusers functions give back the original state dicts exactly."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    model, _, ckpt, _ = source
    for got, module in (
        (convert_ldm_unet_checkpoint(ckpt, dict(model.unet.config)), model.unet),
        (convert_ldm_vae_checkpoint(ckpt, dict(model.vae.config)), model.vae),
    ):
        want = module.state_dict()
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want)
    clip = convert_ldm_clip_checkpoint(ckpt)
    sd = model.text_encoder.state_dict()
    want = {"text_model." + k.removeprefix("text_model."): v for k, v in sd.items()}
    assert clip.keys() - want.keys() == {"text_model.embeddings.position_ids"}
    assert all(torch.equal(clip[k], want[k]) for k in want)


@pytest.mark.parametrize("source", ["epsilon", "v_prediction"], indirect=True)
@pytest.mark.parametrize("fmt", ["safetensors", "ckpt"])
def test_single_file_loads_identical_model(source, fmt):
    model, folder, ckpt, root = source
    file = root / f"tiny-ldm.{fmt}"
    if not file.exists():
        (save_safetensors if fmt == "safetensors" else save_ckpt)(ckpt, file)
    loaded = load_model(str(file), name=model.name, config=str(folder))
    assert loaded.name == model.name
    assert loaded.prediction_type == model.prediction_type  # from the config folder's scheduler
    assert loaded.resolution == model.resolution and loaded.latent_shape == model.latent_shape
    assert type(loaded.tokenizer) is type(model.tokenizer)
    assert loaded.tokenizer(PROMPTS).input_ids == model.tokenizer(PROMPTS).input_ids
    for part in ("unet", "vae", "text_encoder"):
        _same_weights(getattr(loaded, part), getattr(model, part))
        assert not getattr(loaded, part).training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert loaded.identity == model.identity
    _same_outputs(loaded, model)
    assert load_model(str(file), config=str(folder)).name == "tiny-ldm"  # default: the file stem


def test_single_file_dtype(source):
    model, folder, ckpt, root = source
    file = save_safetensors(ckpt, root / "dtype.safetensors")
    loaded = load_model(str(file), config=str(folder), dtype="bfloat16")
    for part in ("unet", "vae", "text_encoder"):
        got, want = getattr(loaded, part).state_dict(), getattr(model, part).state_dict()
        for key, value in want.items():
            if value.is_floating_point():
                assert got[key].dtype == torch.bfloat16, (part, key)
                assert torch.equal(got[key], value.to(torch.bfloat16)), (part, key)


def test_single_file_config_from_the_hub_cache(source, monkeypatch):
    """`config` may be a hub id already in the local cache (e.g. the SD 1.5 repo for fine-tunes)."""
    import huggingface_hub.constants as hc

    model, _, ckpt, root = source
    cache = root / "hub"
    snapshot = cache / "models--owner--tiny" / "snapshots" / ("0123456789abcdef" * 2 + "01234567")
    if not snapshot.exists():
        save_model(model, snapshot)
        (cache / "models--owner--tiny" / "refs").mkdir(parents=True)
        (cache / "models--owner--tiny" / "refs" / "main").write_text(snapshot.name)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    import huggingface_hub._snapshot_download as sd

    if hasattr(sd, "HF_HUB_CACHE"):
        monkeypatch.setattr(sd, "HF_HUB_CACHE", str(cache))
    file = save_safetensors(ckpt, root / "hub-config.safetensors")
    loaded = load_model(str(file), name=model.name, config="owner/tiny")
    assert loaded.identity == model.identity and loaded.prediction_type == model.prediction_type


def test_single_file_without_config_is_refused(source):
    _, _, ckpt, root = source
    file = save_safetensors(ckpt, root / "no-config.safetensors")
    with pytest.raises(UserInputError, match="needs the component configs .* base_model.config="):
        load_model(str(file))


@pytest.mark.parametrize("prefix", [UNET_PREFIX, VAE_PREFIX, CLIP_PREFIX])
def test_file_without_a_component_is_a_clear_error(source, prefix):
    _, folder, ckpt, root = source
    file = root / f"no-{prefix.split('.')[0]}.safetensors"
    save_safetensors({k: v for k, v in ckpt.items() if not k.startswith(prefix)}, file)
    with pytest.raises(
        UserInputError, match=r"could not load .* as a Stable Diffusion checkpoint.* missing"
    ):
        load_model(str(file), config=str(folder))


def test_other_architecture_is_a_clear_error(source):
    _, folder, _, root = source
    other = tiny_components(text_dim=64)  # wider text encoder and cross-attention
    file = save_safetensors(
        to_ldm_checkpoint(other["unet"], other["vae"], other["text_encoder"]),
        root / "other.safetensors",
    )
    with pytest.raises(UserInputError, match=r"could not load .* expected shape"):
        load_model(str(file), config=str(folder))


@pytest.mark.parametrize(
    ("key", "names"),
    [
        (UNET_PREFIX + "out.2.weight", ""),
        (VAE_PREFIX + "decoder.conv_out.weight", ""),
        (CLIP_PREFIX + "text_model.final_layer_norm.weight", "final_layer_norm.weight"),
    ],
)
def test_file_missing_one_weight_is_a_clear_error(source, key, names):
    _, folder, ckpt, root = source
    file = root / f"missing-{key.replace('.', '-')}.safetensors"
    save_safetensors({k: v for k, v in ckpt.items() if k != key}, file)
    with pytest.raises(UserInputError, match=rf"could not load .* missing .*weight.*{names}"):
        load_model(str(file), config=str(folder))
