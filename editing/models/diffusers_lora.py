"""LoRA adapters of a fine-tune in the format diffusers' `pipeline.load_lora_weights(folder)` reads.

The project's artifact stores a LoRA fine-tune as `lora.<peft key>` tensors (peft's
`get_peft_model_state_dict`, adapter name stripped) plus its shape (rank, alpha, target modules)
as JSON metadata. diffusers reads `<folder>/pytorch_lora_weights.safetensors`, written by
`StableDiffusionLoraLoaderMixin.save_lora_weights(folder, unet_lora_layers=
convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)))`: the same tensors under
`unet.`-prefixed diffusers keys (`unet.<module>.lora.down.weight` / `.lora.up.weight` for the
attention projections), and the adapter's `LoraConfig` arguments as the `lora_adapter_metadata`
header entry. This module writes exactly that, using diffusers' own key conversion.

The scale alpha / rank is folded into the up (B) weights and the file records
`lora_alpha = rank`: the adapter then means the same in every loader, including those that ignore
the metadata and assume alpha = rank (diffusers given a state dict, other UIs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from editing.errors import UserInputError
from editing.io.artifacts import save_artifact

DIFFUSERS_LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
"""The file name `load_lora_weights(folder)` looks for (diffusers' `LORA_WEIGHT_NAME_SAFE`)."""

UNET_PREFIX = "unet"
"""The prefix of the UNet's adapter in a pipeline's LoRA file (`StableDiffusionPipeline.unet_name`)."""


def _lora_shape(lora: Mapping[str, Any]) -> tuple[int, float, list[str]]:
    """(rank, alpha, sorted target modules) of the artifact's `lora` metadata, refused if absent."""
    if "rank" not in lora or "targets" not in lora:
        raise UserInputError(
            "the artifact's LoRA metadata has no rank or target modules: re-run the fine-tune"
        )
    rank = int(lora["rank"])
    alpha = float(lora["alpha"]) if lora.get("alpha") is not None else float(rank)
    return rank, alpha, sorted(str(t) for t in lora["targets"])


def diffusers_lora_state_dict(
    tensors: Mapping[str, Tensor], lora: Mapping[str, Any], prefix: str = UNET_PREFIX
) -> dict[str, Tensor]:
    """The artifact's `lora.*` tensors under diffusers' `<prefix>.`-prefixed keys (float32), with
    the scale alpha / rank folded into the up weights.

    Args:
        tensors: artifact tensors; only the `lora.*` ones are read.
        lora: the artifact's LoRA shape, `{"rank": r, "alpha": a or None, "targets": [...]}`.
        prefix: the pipeline component the adapter belongs to.
    """
    from diffusers.utils.state_dict_utils import StateDictType, convert_state_dict_to_diffusers

    rank, alpha, _ = _lora_shape(lora)
    peft_state = {k[len("lora.") :]: v for k, v in tensors.items() if k.startswith("lora.")}
    if not peft_state:
        raise UserInputError(
            "the artifact holds no LoRA tensors (lora.*): it is not a LoRA fine-tune"
        )
    scale = alpha / rank
    scaled = {
        k: (v.float() * scale if ".lora_B." in k else v.float()).contiguous()
        for k, v in peft_state.items()
    }
    converted = convert_state_dict_to_diffusers(scaled, original_type=StateDictType.PEFT)
    return {f"{prefix}.{k}": v for k, v in converted.items()}


def diffusers_lora_metadata(lora: Mapping[str, Any], prefix: str = UNET_PREFIX) -> dict[str, str]:
    """The safetensors header entries diffusers writes beside the tensors: `format` and the
    `<prefix>.`-prefixed `LoraConfig` arguments (`lora_alpha` = rank: the scale is in the weights)."""
    rank, _, targets = _lora_shape(lora)
    config = {
        f"{prefix}.r": rank,
        f"{prefix}.lora_alpha": rank,
        f"{prefix}.target_modules": targets,
    }
    return {"format": "pt", "lora_adapter_metadata": json.dumps(config, indent=2, sort_keys=True)}


def save_diffusers_lora(
    folder: str | Path, tensors: Mapping[str, Tensor], lora: Mapping[str, Any]
) -> Path:
    """Write `<folder>/pytorch_lora_weights.safetensors` (atomically) from an artifact's LoRA
    tensors and shape; returns its path. `pipeline.load_lora_weights(folder)` loads it."""
    path = Path(folder) / DIFFUSERS_LORA_WEIGHTS_NAME
    state = diffusers_lora_state_dict(tensors, lora)
    return save_artifact(path, state, diffusers_lora_metadata(lora))
