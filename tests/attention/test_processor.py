"""Attention processors: bit-exactness, restoration, layer metadata (tiny SD-architecture model)."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from demo_world.tiny import build_tiny_model
from editing.attention import AttentionController, AttentionStore, attention_control
from editing.attention.site import map_level


class EveryLayer(AttentionController):
    """Needs every layer's probabilities (explicit path everywhere) and changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.sites = []

    def wants(self, site) -> bool:
        self.sites.append(site)
        return True


@pytest.fixture(scope="module")
def model():
    return build_tiny_model(seed=0)


def unet_inputs(model, batch: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *model.latent_shape, generator=g)
    emb = torch.randn(
        batch, model.max_prompt_tokens, model.text_encoder.config.hidden_size, generator=g
    )
    return x, torch.tensor(500), emb


def run(unet, inputs):
    x, t, emb = inputs
    with torch.no_grad():
        return unet(x, t, encoder_hidden_states=emb).sample


@pytest.mark.parametrize("stock", [AttnProcessor2_0, AttnProcessor], ids=["sdpa", "explicit"])
def test_identity_controller_is_bit_exact(model, stock):
    unet = model.unet
    originals = unet.attn_processors
    unet.set_attn_processor(stock())
    try:
        inputs = unet_inputs(model)
        expected = run(unet, inputs)
        with attention_control(unet, AttentionController()):
            got = run(unet, inputs)
        assert torch.equal(got, expected)
    finally:
        unet.set_attn_processor(dict(originals))


def test_explicit_path_replicates_attn_processor_bit_for_bit(model):
    """Where the probabilities are needed, the explicit path is diffusers' AttnProcessor exactly."""
    unet = model.unet
    originals = unet.attn_processors
    unet.set_attn_processor(AttnProcessor())
    try:
        inputs = unet_inputs(model)
        expected = run(unet, inputs)
        with attention_control(unet, AttentionStore(max_scale=1.0)):
            got = run(unet, inputs)
        assert torch.equal(got, expected)
    finally:
        unet.set_attn_processor(dict(originals))
    # Against SDPA only float rounding differs (softmax kernels differ in summation order).
    with attention_control(unet, EveryLayer()):
        sdpa_explicit = run(unet, inputs)
    torch.testing.assert_close(sdpa_explicit, run(unet, inputs), rtol=1e-5, atol=1e-5)


def test_explicit_path_on_4d_input_group_norm_and_residual(model):
    """The VAE's attention: 4-D input, group norm, residual connection, rescale factor."""
    vae = model.vae
    originals = vae.attn_processors
    attn = vae.encoder.mid_block.attentions[0]
    assert attn.group_norm is not None and attn.residual_connection
    vae.set_attn_processor(AttnProcessor())
    try:
        image = torch.rand(2, 3, model.resolution, model.resolution) * 2 - 1
        with torch.no_grad():
            expected = vae(image).sample
            controller = EveryLayer()
            with attention_control(vae, controller):
                got = vae(image).sample
        assert torch.equal(got, expected)
        # VAE factor 4 on a 32 px image: the mid-block attention sees 8x8 = 1/4 of the sample side.
        assert {s.size for s in controller.sites} == {(8, 8)}
        assert {s.level for s in controller.sites} == {2}
    finally:
        vae.set_attn_processor(dict(originals))


def test_processors_restored_on_exit_and_on_exception(model):
    unet = model.unet
    before = unet.attn_processors
    hooks = dict(unet._forward_pre_hooks)
    with attention_control(unet, AttentionController()):
        assert all(
            type(p).__name__ == "ControlledAttnProcessor" for p in unet.attn_processors.values()
        )
    after = unet.attn_processors
    assert all(after[k] is before[k] for k in before)
    with pytest.raises(RuntimeError, match="boom"), attention_control(unet, AttentionStore()):
        raise RuntimeError("boom")
    after = unet.attn_processors
    assert all(after[k] is before[k] for k in before)
    assert dict(unet._forward_pre_hooks) == hooks


@pytest.mark.parametrize(("resolution", "big", "small"), [(32, 8, 4), (64, 16, 8)])
def test_site_metadata_is_derived_from_the_latent(resolution, big, small):
    """Place, self/cross and map size come from names, inputs and the latent, not constants."""
    model = build_tiny_model(resolution=resolution)
    controller = EveryLayer()
    with attention_control(model.unet, controller):
        run(model.unet, unet_inputs(model, batch=2))
    seen = {(s.place, s.is_cross, s.size, s.scale) for s in controller.sites}
    assert seen == {
        ("down", False, (big, big), 1.0),
        ("down", True, (big, big), 1.0),
        ("mid", False, (small, small), 0.5),
        ("mid", True, (small, small), 0.5),
        ("up", False, (big, big), 1.0),
        ("up", True, (big, big), 1.0),
    }
    assert all(s.latent_size == (big, big) for s in controller.sites)


def test_map_level_handles_odd_sizes():
    assert map_level(64 * 64, (64, 64)) == (0, (64, 64))
    assert map_level(16 * 16, (64, 64)) == (2, (16, 16))
    assert map_level(8 * 12, (15, 23)) == (1, (8, 12))  # ceil(15/2), ceil(23/2)
    assert map_level(7, (64, 64)) is None
