"""Fine-tuned UNet weights in artifacts: full state dicts or LoRA adapters, saved and re-applied.

Imagic's fine-tuning stage exports either the whole UNet (paper-faithful, in a chosen dtype) or
only LoRA adapter weights (Hu et al. 2021; megabytes). Editing re-applies them to a *copy* of the
base UNet, so a base model object is never mutated and one loaded base serves many checkpoints.
"""

from __future__ import annotations

import copy
import json

import torch
from torch import Tensor, nn

from editing.errors import UserInputError

DEFAULT_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def add_lora(unet: nn.Module, rank: int, alpha: float | None, targets: tuple[str, ...]) -> None:
    """Attach trainable LoRA adapters (peft) to `unet`'s attention projections, in place."""
    from peft import LoraConfig

    config = LoraConfig(
        r=int(rank),
        lora_alpha=float(alpha if alpha is not None else rank),
        init_lora_weights="gaussian",
        target_modules=list(targets),
    )
    unet.add_adapter(config)


def export_unet_weights(
    unet: nn.Module,
    mode: str,
    save_dtype: str = "float32",
    lora: dict | None = None,
    state_dict: dict[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors ("unet.*" or "lora.*") and metadata describing fine-tuned UNet weights.

    `state_dict` replaces `unet.state_dict()` when the weights were gathered elsewhere (FSDP).
    """
    state_dict = unet.state_dict() if state_dict is None else state_dict
    if mode == "full":
        dtype = _DTYPES[save_dtype]
        tensors = {f"unet.{k}": v.detach().to(dtype) for k, v in state_dict.items()}
        return tensors, {"finetune_mode": "full", "save_dtype": save_dtype}
    if mode == "lora":
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(unet, state_dict=state_dict)
        tensors = {f"lora.{k}": v.detach().float() for k, v in state.items()}
        return tensors, {"finetune_mode": "lora", "lora": json.dumps(lora or {}, sort_keys=True)}
    raise UserInputError(f"stage.finetune_mode={mode!r} is not one of 'full', 'lora'")


def has_unet_weights(tensors: dict[str, Tensor]) -> bool:
    return any(k.startswith(("unet.", "lora.")) for k in tensors)


def finetuned_unet(
    base_unet: nn.Module, tensors: dict[str, Tensor], metadata: dict[str, str]
) -> nn.Module:
    """A new UNet: `base_unet` with the artifact's fine-tuned weights applied (base untouched).

    Full weights are loaded into a fresh module built from the base config (on the meta device,
    so no second random initialisation); LoRA adapters are attached to a copy and fused.
    """
    mode = metadata.get("finetune_mode")
    device = next(base_unet.parameters()).device
    dtype = next(base_unet.parameters()).dtype
    if mode == "full":
        state = {k[len("unet.") :]: v for k, v in tensors.items() if k.startswith("unet.")}
        expected = base_unet.state_dict()
        for key, value in state.items():
            if key in expected and tuple(value.shape) != tuple(expected[key].shape):
                raise UserInputError(
                    f"fine-tuned weight {key!r} has shape {tuple(value.shape)}, this UNet's is "
                    f"{tuple(expected[key].shape)}: the artifact was made for another model or is "
                    "damaged"
                )
        with torch.device("meta"):
            unet = type(base_unet).from_config(base_unet.config)
        missing, unexpected = unet.load_state_dict(state, strict=False, assign=True)
        if missing or unexpected:
            raise UserInputError(
                f"fine-tuned weights do not fit this UNet ({len(missing)} missing, "
                f"{len(unexpected)} unexpected keys, e.g. {(missing or unexpected)[:2]})"
            )
        return unet.to(device=device, dtype=dtype).eval().requires_grad_(False)
    if mode == "lora":
        from peft import set_peft_model_state_dict

        lora = json.loads(metadata.get("lora", "{}"))
        unet = copy.deepcopy(base_unet)
        add_lora(
            unet, lora["rank"], lora.get("alpha"), tuple(lora.get("targets", DEFAULT_LORA_TARGETS))
        )
        state = {
            k[len("lora.") :]: v.to(device) for k, v in tensors.items() if k.startswith("lora.")
        }
        result = set_peft_model_state_dict(unet, state)
        if getattr(result, "unexpected_keys", None):
            raise UserInputError(f"LoRA weights do not fit this UNet: {result.unexpected_keys[:2]}")
        unet.fuse_lora()
        unet.unload_lora()
        return unet.to(device=device, dtype=dtype).eval().requires_grad_(False)
    raise UserInputError(f"artifact has no fine-tuned UNet weights (finetune_mode={mode!r})")
