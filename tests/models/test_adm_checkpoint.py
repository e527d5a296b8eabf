"""guided-diffusion (ADM) checkpoints -> diffusers UNet2DModel: strict, exact and safe.

The checkpoints here are written from the ADM layout of `tests/adm_layout.py` (the real files' key
names and shapes for the given flags) and checked against its independent forward pass."""

from __future__ import annotations

import pytest
import torch
from adm_layout import adm_forward, adm_shapes, attention, random_adm_state_dict, resblock

from editing.errors import UserInputError
from editing.models.adm_checkpoint import build_adm_unet, load_adm_state_dict
from editing.models.adm_flags import ADMFlags

# The brief's tiny model: 32 px, levels 32/64/64 channels, attention at 16 and 8 px, heads of 16.
TINY = dict(
    image_size=32,
    num_channels=32,
    num_res_blocks=1,
    channel_mult="1,2,2",
    attention_resolutions="16,8",
    num_head_channels=16,
)
# Every other switch flipped: conv resamplers, additive time embedding, new q/k/v order, class
# labels, no learned sigma, a fixed head count.
OTHER = dict(
    TINY,
    resblock_updown=False,
    use_scale_shift_norm=False,
    use_new_attention_order=True,
    class_cond=True,
    learn_sigma=False,
    num_head_channels=-1,
    num_heads=2,
)


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def tiny():
    flags = ADMFlags(**TINY)
    return flags, random_adm_state_dict(flags)


def test_a_tiny_checkpoint_file_converts_strictly_and_runs(tmp_path, tiny):
    flags, state = tiny
    torch.save(state, tmp_path / "tiny.pt")
    loaded = load_adm_state_dict(tmp_path / "tiny.pt")
    assert {k: tuple(v.shape) for k, v in loaded.items()} == adm_shapes(flags)
    unet = build_adm_unet(loaded, flags)
    params = list(unet.parameters())
    assert not any(p.is_meta or p.requires_grad for p in params)
    # Every number of the file is in the UNet exactly once (q/k/v split, proj_out reshaped).
    assert sum(p.numel() for p in params) == sum(v.numel() for v in loaded.values())
    out = unet(torch.randn(2, 3, 32, 32), torch.tensor([0, 999])).sample
    assert out.shape == (2, 6, 32, 32) and torch.isfinite(out).all()


@pytest.mark.parametrize("options", [TINY, OTHER], ids=["tiny", "other_switches"])
def test_the_converted_unet_computes_the_adm_forward_pass(options):
    flags = ADMFlags(**options)
    state = random_adm_state_dict(flags, seed=1)
    unet = build_adm_unet(state, flags)
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 3, 32, 32, generator=g), torch.tensor([3, 871])
    y = torch.tensor([5, 999]) if flags.class_cond else None
    with torch.no_grad():
        out = unet(x, t, class_labels=y).sample
    ref = adm_forward(state, flags, x, t, y)
    assert out.shape == ref.shape == (2, 6 if flags.learn_sigma else 3, 32, 32)
    assert (out - ref).abs().max() < 1e-4 * ref.abs().max()


def test_attention_matches_the_legacy_qkv_maths_and_tells_head_orders_apart(tiny):
    flags, state = tiny
    unet = build_adm_unet(state, flags)
    x = torch.randn(2, 64, 8, 8, generator=torch.Generator().manual_seed(2))
    # input_blocks.3 = level 1 (16 px, 64 channels): [ResBlock, AttentionBlock], 4 heads of 16.
    for adm, block in (
        ("input_blocks.3.1", unet.down_blocks[1].attentions[0]),
        ("middle_block.1", unet.mid_block.attentions[0]),
    ):
        with torch.no_grad():
            got = block(x)
        ref = attention(state, adm, x, heads=4, legacy=True)
        assert (got - ref).abs().max() < 1e-5
    # The test can see a wrong split: the same file read as the new q/k/v order differs.
    wrong = build_adm_unet(state, ADMFlags(**TINY, use_new_attention_order=True))
    with torch.no_grad():
        misread = wrong.mid_block.attentions[0](x)
    assert (misread - attention(state, "middle_block.1", x, heads=4)).abs().max() > 1e-2


def test_resblocks_with_scale_shift_norm_and_resampling_match_adm(tiny):
    flags, state = tiny
    unet = build_adm_unet(state, flags)
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(2, 4 * 32, generator=g)
    cases = [  # (ADM prefix, diffusers block, in channels, side, ADM up/down)
        ("input_blocks.3.0", unet.down_blocks[1].resnets[0], 32, 16, None),  # 32 -> 64, 1x1 skip
        ("input_blocks.2.0", unet.down_blocks[0].downsamplers[0], 32, 32, "down"),
        ("output_blocks.1.2", unet.up_blocks[0].upsamplers[0], 64, 8, "up"),
    ]
    for adm, block, ch, side, updown in cases:
        x = torch.randn(2, ch, side, side, generator=g)
        with torch.no_grad():
            got = block(x, emb)
        ref = resblock(state, adm, x, emb, updown, scale_shift=True)
        assert got.shape == ref.shape and (got - ref).abs().max() < 1e-5


def test_the_real_256px_unconditional_layout_converts_strictly():
    """All 566 tensors of 256x256_diffusion_uncond.pt (as shapes, on the meta device)."""
    flags = ADMFlags()  # the defaults are that model's flags
    meta = {k: torch.empty(s, device="meta") for k, s in adm_shapes(flags).items()}
    unet = build_adm_unet(meta, flags)
    assert len(meta) == 566
    assert sum(p.numel() for p in unet.parameters()) == 552_814_086
    c = unet.config
    assert c.block_out_channels == (256, 256, 512, 512, 1024, 1024)
    assert c.down_block_types[:3] == ("ResnetDownsampleBlock2D",) * 3
    assert c.down_block_types[3:] == ("AttnDownBlock2D",) * 3
    assert (c.out_channels, c.attention_head_dim, c.resnet_time_scale_shift) == (
        6,
        64,
        "scale_shift",
    )


# --- refusals ----------------------------------------------------------------------------------


class Payload:
    """Not a tensor: pickling it stores a reference to code."""


def test_files_that_are_not_plain_tensors_are_refused_in_one_line(tmp_path, tiny):
    _, state = tiny
    cases = {
        "code.pt": {**state, "payload": Payload()},
        "tensor.pt": state["out.2.weight"],
        "nested.pt": {"state_dict": state},
    }
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    expected = {
        "code.pt": r"pickled objects that are not tensors \([\w.]*Payload\)",
        "corrupt.pt": "not a readable torch checkpoint",
        "tensor.pt": "holds a Tensor",
        "nested.pt": "not a flat state dict",
    }
    for name, match in expected.items():
        with pytest.raises(UserInputError, match=match) as err:
            load_adm_state_dict(tmp_path / name)
        assert str(tmp_path / name) in _one_line(err)
    with pytest.raises(UserInputError, match="is not a file"):
        load_adm_state_dict(tmp_path / "missing.pt")


def test_missing_unknown_and_misshapen_weights_are_one_error(tiny):
    flags, state = tiny
    partial = {k: v for k, v in state.items() if k != "middle_block.1.qkv.weight"}
    with pytest.raises(UserInputError, match=r"1 weight\(s\) of this layout missing") as err:
        build_adm_unet(partial, flags)
    assert "middle_block.1.qkv.weight" in _one_line(err)
    extra = {**state, "label_emb.weight": torch.zeros(1000, 128)}
    with pytest.raises(UserInputError, match=r"1 unknown weight\(s\) \(label_emb.weight\)") as err:
        build_adm_unet(extra, flags)
    _one_line(err)
    wider = ADMFlags(**{**TINY, "num_channels": 64})  # same keys, other shapes
    with pytest.raises(UserInputError, match="misshapen") as err:
        build_adm_unet(state, wider)
    _one_line(err)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"image_size": 512, "num_channels": 256}, "cannot represent"),  # channel_mult 0.5, ...
        (
            {**TINY, "num_head_channels": -1, "num_heads": 4, "attention_resolutions": "32,8"},
            "one head width",
        ),
        ({**TINY, "num_channels": 24}, "multiple of 32"),
        ({"image_size": 48}, "has no default"),
        ({"noise_schedule": "sqrt"}, "noise_schedule"),
        ({"num_res_blocks": 0}, "num_res_blocks"),
    ],
)
def test_flags_a_unet2dmodel_cannot_represent_are_refused(options, match):
    with pytest.raises(UserInputError, match=match) as err:
        ADMFlags(**options).unet_config()
    _one_line(err)
