"""Attention processors on SDXL's layout (`base_model=tiny_sdxl`: cross-attention only at the lower
level, two transformer blocks there, a pooled + time-ids conditioned UNet): the identity
controller and the explicit path are bit-exact with diffusers' stock processors, and the layer
metadata follows the non-square latent."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from editing.attention import AttentionController, AttentionStore, attention_control


class EveryLayer(AttentionController):
    """Needs every layer's probabilities (explicit path everywhere) and changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.sites = []

    def wants(self, site) -> bool:
        self.sites.append(site)
        return True


def _inputs(model, batch: int = 4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, 8, 12, generator=g)  # a 32 x 48 px working size
    prompts = ["a red square", "", "a blue circle", "a cat"][:batch]
    return x, model.encode_condition(prompts)


def _eps(model, inputs):
    x, cond = inputs
    with torch.no_grad():
        return model.eps(x, 500, cond)


@pytest.mark.parametrize("stock", [AttnProcessor2_0, AttnProcessor], ids=["sdpa", "explicit"])
def test_identity_controller_is_bit_exact(tiny_sdxl_model, stock):
    unet = tiny_sdxl_model.unet
    originals = unet.attn_processors
    unet.set_attn_processor(stock())
    try:
        inputs = _inputs(tiny_sdxl_model)
        expected = _eps(tiny_sdxl_model, inputs)
        with attention_control(unet, AttentionController()):
            got = _eps(tiny_sdxl_model, inputs)
        assert torch.equal(got, expected)
    finally:
        unet.set_attn_processor(dict(originals))


def test_explicit_path_is_attn_processor_bit_for_bit(tiny_sdxl_model):
    unet = tiny_sdxl_model.unet
    originals = unet.attn_processors
    unet.set_attn_processor(AttnProcessor())
    try:
        inputs = _inputs(tiny_sdxl_model)
        expected = _eps(tiny_sdxl_model, inputs)
        store = AttentionStore(max_scale=1.0)
        with attention_control(unet, store):
            got = _eps(tiny_sdxl_model, inputs)
        assert torch.equal(got, expected)
    finally:
        unet.set_attn_processor(dict(originals))


def test_sites_follow_the_sdxl_layout(tiny_sdxl_model):
    controller = EveryLayer()
    with attention_control(tiny_sdxl_model.unet, controller):
        _eps(tiny_sdxl_model, _inputs(tiny_sdxl_model, batch=2))
    seen = {(s.place, s.is_cross, s.size, s.scale) for s in controller.sites}
    # No attention at full size (DownBlock2D first, as SDXL); the 1/2 level has it in down, mid, up.
    assert seen == {
        (place, cross, (4, 6), 0.5) for place in ("down", "mid", "up") for cross in (False, True)
    }
    cross = {s.name for s in controller.sites if s.is_cross}
    # Two transformer blocks per attention at the lower level (transformer_layers_per_block=2).
    assert sum(n.startswith("down_blocks.1") for n in cross) == 2
    assert all(s.latent_size == (8, 12) for s in controller.sites)
