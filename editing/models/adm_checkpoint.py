"""OpenAI guided-diffusion (ADM) checkpoints -> diffusers `UNet2DModel`, safely and strictly.

`load_adm_state_dict` reads a `.pt` file with `torch.load(weights_only=True)`: plain tensors only,
never pickled code; anything else is one `UserInputError`. `convert_adm_state_dict` renames the ADM
layout (`guided_diffusion/unet.py`, laid out by `ADMFlags`) into `UNet2DModel`'s:

    time_embed.{0,2}                  -> time_embedding.linear_{1,2}
    label_emb (class_cond)            -> class_embedding
    input_blocks.0.0                  -> conv_in
    input_blocks.K.{0 res, 1 attn}    -> down_blocks.L.{resnets, attentions}.J
    input_blocks.K.0 (down / op)      -> down_blocks.L.downsamplers.0 (resnet, or .conv)
    middle_block.{0, 1, 2}            -> mid_block.{resnets.0, attentions.0, resnets.1}
    output_blocks.K.{0 res, 1 attn}   -> up_blocks.U.{resnets, attentions}.I
    output_blocks.K.{1|2} (up / conv) -> up_blocks.U.upsamplers.0
    out.{0, 2}                        -> conv_norm_out, conv_out
    ResBlock in_layers.{0,2} / emb_layers.1 / out_layers.{0,3} / skip_connection
                                      -> norm1, conv1 / time_emb_proj / norm2, conv2 / conv_shortcut
    AttentionBlock norm / qkv / proj_out -> group_norm / to_q, to_k, to_v / to_out.0

The fused 1x1 `qkv` convolution [3C, C, 1] is split per head: in the legacy order
(`QKVAttentionLegacy`, the released checkpoints) its rows are [head 0: q, k, v | head 1: q, k, v |
...], in the new order (`use_new_attention_order`) [q: heads | k: heads | v: heads]; diffusers'
`to_q/to_k/to_v` [C, C] are head-major. Every key of the file must be consumed and every parameter
of the UNet filled: a missing, unknown or misshapen key is one error.

What a `UNet2DModel` cannot represent, refused by `ADMFlags.unet_config`: a first level whose
channels differ from num_channels (the 512 px model's channel_mult 0.5: ADM embeds the timestep
with num_channels frequencies, diffusers with the first level's channels) and fixed head counts
giving different head widths per level (`num_head_channels=-1`). Not reproduced bit for bit:
ADM's fp16 torso (`use_fp16`: group norms and softmax in fp32 inside an fp16 network); here the whole
UNet runs in `base_model.dtype` (float32 by default, more precise than ADM's own run).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from editing.errors import UserInputError
from editing.models.adm_flags import ADMFlags

if TYPE_CHECKING:
    from diffusers import UNet2DModel

_RESBLOCK = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}


def load_adm_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a guided-diffusion `.pt` file {key: tensor}, read without running pickled
    code (`weights_only=True`); a file that is not a flat dict of tensors is one `UserInputError`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserInputError(f"base_model.path={str(path)!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # pickled objects other than tensors: never run
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise UserInputError(
            f"{path} holds pickled objects that are not tensors{what}: refused, only plain "
            f"tensors are read from a checkpoint (torch.load weights_only=True), never pickled code"
        ) from None
    except Exception as err:  # a corrupt or truncated file, or not a torch file at all
        lines = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().split(". ")[0].splitlines()
        reason = lines[0][:160] if lines else type(err).__name__
        raise UserInputError(
            f"{path} is not a readable torch checkpoint ({reason}): "
            f"give the guided-diffusion .pt file itself"
        ) from None
    if not isinstance(state, Mapping) or not state:
        raise UserInputError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise UserInputError(
            f"{path} is not a flat state dict of tensors ({len(bad)} entries are not, e.g. "
            f"{str(bad[0])[:60]!r}); give the guided-diffusion model file itself"
        )
    return dict(state)


def _layout(flags: ADMFlags) -> Iterator[tuple[str, str, str]]:
    """(ADM module prefix, diffusers module prefix, kind) for every module holding weights, kind
    one of "plain" (same parameter names), "embedding" (weight only), "res", "attn", "conv" (a
    resampling conv)."""
    yield "time_embed.0", "time_embedding.linear_1", "plain"
    yield "time_embed.2", "time_embedding.linear_2", "plain"
    if flags.class_cond:
        yield "label_emb", "class_embedding", "embedding"
    yield "input_blocks.0.0", "conv_in", "plain"
    levels, attention = len(flags.multipliers()), flags.attention_levels()
    resample = "res" if flags.resblock_updown else "conv"
    k = 1
    for level in range(levels):
        for j in range(flags.num_res_blocks):
            yield f"input_blocks.{k}.0", f"down_blocks.{level}.resnets.{j}", "res"
            if attention[level]:
                yield f"input_blocks.{k}.1", f"down_blocks.{level}.attentions.{j}", "attn"
            k += 1
        if level != levels - 1:
            op = "" if flags.resblock_updown else ".op"
            yield f"input_blocks.{k}.0{op}", f"down_blocks.{level}.downsamplers.0", resample
            k += 1
    yield "middle_block.0", "mid_block.resnets.0", "res"
    yield "middle_block.1", "mid_block.attentions.0", "attn"
    yield "middle_block.2", "mid_block.resnets.1", "res"
    k = 0
    for u, level in enumerate(reversed(range(levels))):
        for i in range(flags.num_res_blocks + 1):
            yield f"output_blocks.{k}.0", f"up_blocks.{u}.resnets.{i}", "res"
            n = 1
            if attention[level]:
                yield f"output_blocks.{k}.1", f"up_blocks.{u}.attentions.{i}", "attn"
                n = 2
            if level and i == flags.num_res_blocks:
                op = "" if flags.resblock_updown else ".conv"
                yield f"output_blocks.{k}.{n}{op}", f"up_blocks.{u}.upsamplers.0", resample
            k += 1
    yield "out.0", "conv_norm_out", "plain"
    yield "out.2", "conv_out", "plain"


def _split_qkv(qkv: Tensor, heads: int, legacy: bool) -> tuple[Tensor, Tensor, Tensor]:
    """[3C, ...] fused q/k/v rows -> three head-major [C, ...] tensors (see the module docstring)."""
    rest = qkv.shape[1:]
    width = qkv.shape[0] // (3 * heads)
    if legacy:  # rows (head, q|k|v, channel)
        grouped = qkv.reshape(heads, 3, width, *rest)
        parts = [grouped[:, i] for i in range(3)]
    else:  # rows (q|k|v, head, channel)
        grouped = qkv.reshape(3, heads, width, *rest)
        parts = [grouped[i] for i in range(3)]
    q, k, v = (p.reshape(heads * width, *rest).contiguous() for p in parts)
    return q, k, v


def convert_adm_state_dict(state: Mapping[str, Tensor], flags: ADMFlags) -> dict[str, Tensor]:
    """ADM weights -> `UNet2DModel` weights of `flags.unet_config()`.

    Raises `UserInputError` (one line) when the file lacks weights this layout needs or has weights
    it does not know (another model, or flags that do not match the file)."""
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []

    def take(key: str) -> Tensor | None:
        if key not in state:
            missing.append(key)
            return None
        used.add(key)
        return state[key]

    def has(prefix: str) -> bool:
        return f"{prefix}.weight" in state

    channels = flags.block_channels()
    for adm, hf, kind in _layout(flags):
        if kind == "embedding":
            tensor = take(f"{adm}.weight")
            if tensor is not None:
                out[f"{hf}.weight"] = tensor
        elif kind in ("plain", "conv"):
            for p in ("weight", "bias"):
                tensor = take(f"{adm}.{p}")
                if tensor is not None:
                    out[f"{hf}.{'conv.' if kind == 'conv' else ''}{p}"] = tensor
        elif kind == "res":
            for a, h in _RESBLOCK.items():
                if a == "skip_connection" and not has(f"{adm}.{a}"):
                    continue  # identity skip (channels unchanged); the UNet check catches errors
                for p in ("weight", "bias"):
                    tensor = take(f"{adm}.{a}.{p}")
                    if tensor is not None:
                        out[f"{hf}.{h}.{p}"] = tensor
        else:  # attention
            for p in ("weight", "bias"):
                norm = take(f"{adm}.norm.{p}")
                if norm is not None:
                    out[f"{hf}.group_norm.{p}"] = norm
                proj = take(f"{adm}.proj_out.{p}")
                if proj is not None:
                    out[f"{hf}.to_out.0.{p}"] = (
                        proj.reshape(proj.shape[0], -1) if p == "weight" else proj
                    )
                qkv = take(f"{adm}.qkv.{p}")
                if qkv is None:
                    continue
                if p == "weight":
                    qkv = qkv.reshape(qkv.shape[0], -1)  # conv1d [3C, C, 1] -> [3C, C]
                heads = flags.heads(qkv.shape[0] // 3, upsampling=adm.startswith("output"))
                if qkv.shape[0] % 3 or (qkv.shape[0] // 3) % heads:
                    raise UserInputError(
                        f"{adm}.qkv.{p} has {qkv.shape[0]} rows: not 3 x heads x width for "
                        f"{heads} heads (do the flags match the file?)"
                    )
                for name, part in zip(
                    ("q", "k", "v"), _split_qkv(qkv, heads, not flags.use_new_attention_order)
                ):
                    out[f"{hf}.to_{name}.{p}"] = part
    unknown = sorted(set(state) - used)
    if missing or unknown:
        raise UserInputError(_mismatch_message(missing, unknown, flags, channels))
    return out


def _mismatch_message(missing: list[str], unknown: list[str], flags: ADMFlags, channels) -> str:
    parts = []
    if missing:
        more = ", ..." if len(missing) > 3 else ""
        parts.append(
            f"{len(missing)} weight(s) of this layout missing ({', '.join(missing[:3])}{more})"
        )
    if unknown:
        more = ", ..." if len(unknown) > 3 else ""
        parts.append(f"{len(unknown)} unknown weight(s) ({', '.join(unknown[:3])}{more})")
    return (
        f"the checkpoint does not match the guided-diffusion flags (image_size={flags.image_size}, "
        f"levels {list(channels)}, num_res_blocks={flags.num_res_blocks}, "
        f"resblock_updown={flags.resblock_updown}, class_cond={flags.class_cond}): "
        + "; ".join(parts)
    )


def build_adm_unet(
    state: Mapping[str, Tensor], flags: ADMFlags, dtype: torch.dtype = torch.float32
) -> UNet2DModel:
    """A frozen `UNet2DModel` holding the converted weights of `state` (strict: every parameter
    of the UNet filled, every tensor shaped as the UNet's; otherwise one `UserInputError`).

    The UNet is built on the meta device and takes the converted tensors as its parameters, so
    no random initialisation runs and the weights are held once."""
    from diffusers import UNet2DModel

    converted = convert_adm_state_dict(state, flags)
    with torch.device("meta"):
        unet = UNet2DModel(**flags.unet_config())
    expected = unet.state_dict()
    unfilled = sorted(set(expected) - set(converted))
    extra = sorted(set(converted) - set(expected))
    shapes = [
        f"{k} {list(converted[k].shape)} (UNet {list(v.shape)})"
        for k, v in expected.items()
        if k in converted and converted[k].shape != v.shape
    ]
    if unfilled or extra or shapes:
        detail = shapes or [f"unfilled {k}" for k in unfilled] or [f"extra {k}" for k in extra]
        raise UserInputError(
            f"the checkpoint does not fit the UNet of these flags: {len(shapes)} misshapen, "
            f"{len(unfilled)} unfilled, {len(extra)} extra tensor(s), e.g. {detail[0]} "
            f"(do base_model.num_channels / channel_mult / num_head_channels match the file?)"
        )
    weights = {k: v.to(dtype) for k, v in converted.items()}
    unet.load_state_dict(weights, strict=True, assign=True)
    return unet.eval().requires_grad_(False)
