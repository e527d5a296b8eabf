"""Write diffusers-layout Stable Diffusion weights as one original LDM (CompVis) checkpoint.

The inverse of diffusers' `loaders/single_file_utils.py` (`convert_ldm_unet_checkpoint`,
`convert_ldm_vae_checkpoint`, `convert_ldm_clip_checkpoint`), written independently so that a test
can make a real single-file checkpoint out of in-process tiny components and load it back through
`StableDiffusionPipeline.from_single_file`:

- UNet -> `model.diffusion_model.*`: `input_blocks.N.{0 resnet | 0.op downsampler, 1 attention}`,
  `middle_block.{0 resnet, 1 attention, 2 resnet}`, `output_blocks.N.{0 resnet, 1 attention,
  1|2 upsampler}`, with `N` laid out by `layers_per_block` as in `ldm.modules.diffusionmodules
  .openaimodel.UNetModel`; resnets use `in_layers`/`emb_layers`/`out_layers`/`skip_connection`.
- VAE -> `first_stage_model.*`: `encoder.down.I.block.J`, `decoder.up.I.block.J` with the up blocks
  numbered in reverse (LDM counts them from the lowest resolution), `mid.block_1/attn_1/block_2`,
  `nin_shortcut`, `norm_out`; the mid-block attention's q/k/v/proj_out are 1x1 convolutions
  ([C, C, 1, 1]) where diffusers has linear layers ([C, C]).
- CLIP text encoder -> `cond_stage_model.transformer.text_model.*` (the transformers 4 layout that
  real SD 1.x files carry, whatever the installed transformers calls its keys).
- SDXL (`to_sdxl_checkpoint`, the generative-models layout of `sd_xl_base_1.0.safetensors`): the
  UNet's added embedding -> `label_emb.0.{0,2}`; the first text encoder ->
  `conditioner.embedders.0.transformer.text_model.*`; the second (with projection) in OpenCLIP's
  layout -> `conditioner.embedders.1.model.*`: `token_embedding`, `positional_embedding`,
  `transformer.resblocks.N.{ln_1, attn.in_proj (q, k, v stacked), attn.out_proj, ln_2, mlp.c_fc,
  mlp.c_proj}`, `ln_final`, and `text_projection` stored transposed ([hidden, projection]).

Every diffusers key must be mapped: an unknown one raises `KeyError`, so a converter that silently
drops weights cannot make a test pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPENCLIP_PREFIX = "conditioner.embedders.1.model."

_UNET_TOP = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL's pooled + time-ids embedding
    "add_embedding.linear_2": "label_emb.0.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _split(rest: str, names: Mapping[str, str], key: str) -> str:
    """`rest` = `<module>.<param>` with `<module>` renamed through `names`."""
    module, _, param = rest.rpartition(".")
    if module not in names:
        raise KeyError(f"no LDM name for {key!r} (module {module!r})")
    return f"{names[module]}.{param}"


def unet_to_ldm(state_dict: Mapping[str, Tensor], layers_per_block: int) -> dict[str, Tensor]:
    """A `UNet2DConditionModel` state dict in `openaimodel.UNetModel` layout (no prefix).

    Down block `b`, layer `j` is input block `1 + b * (L + 1) + j` (block 0 is `conv_in`) and its
    downsampler the block after its `L` layers; up block `b`, layer `j` is output block
    `b * (L + 1) + j`, where `L + 1` layers make an up block and the upsampler joins the last one,
    after the attention if the block has one.
    """
    if not isinstance(layers_per_block, int):
        raise TypeError(
            f"LDM layout needs one layers_per_block for all blocks, not {layers_per_block}"
        )
    step = layers_per_block + 1
    attn_up = {
        int(m.group(1)) for k in state_dict if (m := re.match(r"up_blocks\.(\d+)\.attentions", k))
    }
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        module, _, param = key.rpartition(".")
        if module in _UNET_TOP:
            new = f"{_UNET_TOP[module]}.{param}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            b, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            new = f"input_blocks.{1 + b * step + j}.0.{_split(rest, _UNET_RESNET, key)}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            b, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            new = f"input_blocks.{1 + b * step + j}.1.{rest}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(weight|bias)", key):
            b, param = int(m.group(1)), m.group(2)
            new = f"input_blocks.{1 + b * step + layers_per_block}.0.op.{param}"
        elif m := re.fullmatch(r"mid_block\.resnets\.([01])\.(.+)", key):
            new = f"middle_block.{2 * int(m.group(1))}.{_split(m.group(2), _UNET_RESNET, key)}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            new = f"middle_block.1.{m.group(1)}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            b, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            new = f"output_blocks.{b * step + j}.0.{_split(rest, _UNET_RESNET, key)}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            b, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            new = f"output_blocks.{b * step + j}.1.{rest}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)", key):
            b, param = int(m.group(1)), m.group(2)
            slot = 2 if b in attn_up else 1
            new = f"output_blocks.{b * step + layers_per_block}.{slot}.conv.{param}"
        else:
            raise KeyError(f"no LDM name for UNet key {key!r}")
        out[new] = value
    return out


def vae_to_ldm(state_dict: Mapping[str, Tensor], num_up_blocks: int) -> dict[str, Tensor]:
    """An `AutoencoderKL` state dict in `ldm.models.autoencoder.AutoencoderKL` layout (no prefix)."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        new = None
        if re.fullmatch(
            r"((encoder|decoder)\.conv_(in|out)|(post_)?quant_conv)\.(weight|bias)", key
        ):
            new = key  # same name in both layouts
        elif m := re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(weight|bias)", key):
            new = f"{m.group(1)}.norm_out.{m.group(2)}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            rest = m.group(3).replace("conv_shortcut", "nin_shortcut")
            new = f"encoder.down.{m.group(1)}.block.{m.group(2)}.{rest}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"encoder.down.{m.group(1)}.downsample.conv.{m.group(2)}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            rest = m.group(3).replace("conv_shortcut", "nin_shortcut")
            level = num_up_blocks - 1 - int(m.group(1))
            new = f"decoder.up.{level}.block.{m.group(2)}.{rest}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            level = num_up_blocks - 1 - int(m.group(1))
            new = f"decoder.up.{level}.upsample.conv.{m.group(2)}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.([01])\.(.+)", key):
            rest = m.group(3).replace("conv_shortcut", "nin_shortcut")
            new = f"{m.group(1)}.mid.block_{int(m.group(2)) + 1}.{rest}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
            new = f"{m.group(1)}.mid.attn_1.{_split(m.group(2), _VAE_ATTENTION, key)}"
            if value.ndim == 2:  # linear [C, C] -> 1x1 conv [C, C, 1, 1]
                value = value[:, :, None, None]
        if new is None:
            raise KeyError(f"no LDM name for VAE key {key!r}")
        out[new] = value
    return out


def clip_to_ldm(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A `CLIPTextModel` state dict as `transformer.text_model.*` (transformers 4 key names).

    transformers >= 5.6 flattened `CLIPTextModel` (no `text_model.` level); SD 1.x files have it.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        out["text_model." + key.removeprefix("text_model.")] = value
    return out


_OPENCLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def openclip_to_ldm(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A `CLIPTextModelWithProjection` state dict in OpenCLIP's text-tower layout (no prefix)."""
    out: dict[str, Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, Tensor]] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("text_model.")
        if key == "embeddings.token_embedding.weight":
            out["token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out["positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out["ln_final." + key.rpartition(".")[2]] = value
        elif key == "text_projection.weight":  # Linear [P, D] -> OpenCLIP's x @ proj, [D, P]
            out["text_projection"] = value.T.contiguous()
        elif m := re.fullmatch(
            r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key
        ):
            qkv.setdefault((int(m.group(1)), m.group(3)), {})[m.group(2)] = value
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key):
            rest = _split(m.group(2), _OPENCLIP_LAYER, key)
            out[f"transformer.resblocks.{m.group(1)}.{rest}"] = value
        else:
            raise KeyError(f"no OpenCLIP name for text encoder key {key!r}")
    for (layer, param), parts in qkv.items():
        stacked = torch.cat([parts["q"], parts["k"], parts["v"]])
        out[f"transformer.resblocks.{layer}.attn.in_proj_{param}"] = stacked
    return out


def to_sdxl_checkpoint(unet, vae, text_encoder, text_encoder_2) -> dict[str, Tensor]:
    """One SDXL single-file state dict (prefixed keys, contiguous CPU tensors) of the four models."""
    ckpt: dict[str, Tensor] = {}
    unet_sd = unet_to_ldm(unet.state_dict(), unet.config.layers_per_block)
    ckpt.update({UNET_PREFIX + k: v for k, v in unet_sd.items()})
    vae_sd = vae_to_ldm(vae.state_dict(), len(vae.config.up_block_types))
    ckpt.update({VAE_PREFIX + k: v for k, v in vae_sd.items()})
    clip_sd = clip_to_ldm(text_encoder.state_dict())
    n = text_encoder.config.max_position_embeddings
    clip_sd["text_model.embeddings.position_ids"] = torch.arange(n, dtype=torch.long)[None]
    ckpt.update({SDXL_CLIP_PREFIX + k: v for k, v in clip_sd.items()})
    open_sd = openclip_to_ldm(text_encoder_2.state_dict())
    ckpt.update({SDXL_OPENCLIP_PREFIX + k: v for k, v in open_sd.items()})
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in ckpt.items()}


def to_ldm_checkpoint(unet, vae, text_encoder, *, position_ids: bool = True) -> dict[str, Tensor]:
    """One LDM-layout state dict (prefixed keys, contiguous CPU tensors) of the three models.

    `position_ids`: also write the text encoder's `embeddings.position_ids` buffer, which real
    SD 1.x checkpoints carry (it is a non-persistent buffer in current transformers).
    """
    ckpt: dict[str, Tensor] = {}
    unet_sd = unet_to_ldm(unet.state_dict(), unet.config.layers_per_block)
    ckpt.update({UNET_PREFIX + k: v for k, v in unet_sd.items()})
    vae_sd = vae_to_ldm(vae.state_dict(), len(vae.config.up_block_types))
    ckpt.update({VAE_PREFIX + k: v for k, v in vae_sd.items()})
    clip_sd = clip_to_ldm(text_encoder.state_dict())
    if position_ids:
        n = text_encoder.config.max_position_embeddings
        clip_sd["text_model.embeddings.position_ids"] = torch.arange(n, dtype=torch.long)[None]
    ckpt.update({CLIP_PREFIX + k: v for k, v in clip_sd.items()})
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in ckpt.items()}


def save_safetensors(ckpt: Mapping[str, Tensor], path: str | Path) -> Path:
    from safetensors.torch import save_file

    save_file(dict(ckpt), str(path))
    return Path(path)


def save_ckpt(ckpt: Mapping[str, Tensor], path: str | Path, global_step: int = 0) -> Path:
    """A `.ckpt` torch pickle as old LDM checkpoints are: `{"state_dict": ..., "global_step": N}`."""
    torch.save({"state_dict": dict(ckpt), "global_step": global_step}, str(path))
    return Path(path)
