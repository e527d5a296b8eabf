"""A fine-tuned UNet as a diffusers model folder (`UNet2DConditionModel.from_pretrained(folder)`).

`export_finetuned_unet` applies an artifact's fine-tuned weights (a full state dict, or LoRA
adapters, fused) to a copy of the base UNet, exactly as an edit does
(`editing.models.unet_weights.finetuned_unet`), and writes `unet.save_pretrained(folder)`:
`config.json` and `diffusion_pytorch_model.safetensors`.

The folder appears complete or not at all: it is written into a hidden staging folder beside it
(`.<name>.<random>.tmp`, same filesystem) and renamed into place; an earlier export in its place is
replaced, anything else there is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from editing.errors import UserInputError
from editing.models.unet_weights import finetuned_unet

UNET_CONFIG_NAME = "config.json"
EXPORT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _is_model_folder(folder: Path) -> bool:
    """Whether `folder` holds a diffusers model (an earlier export that may be replaced)."""
    try:
        config = json.loads((folder / UNET_CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "_class_name" in config


def check_export_folder(folder: str | Path, name: str = "out") -> Path:
    """Refuse a destination that is a file, a folder holding something other than a diffusers
    model, or a place that cannot be written; returns it as a Path. Writes nothing."""
    folder = Path(folder)
    if folder.is_file():
        raise UserInputError(f"{name}={folder} is a file: give a folder for the UNet")
    if folder.is_dir() and any(folder.iterdir()) and not _is_model_folder(folder):
        raise UserInputError(
            f"{name}={folder} is a folder with other content: give a new or empty folder "
            "(an earlier UNet export there is replaced)"
        )
    existing = (
        folder if folder.is_dir() else next(p for p in folder.absolute().parents if p.exists())
    )
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"{name}={folder}: cannot write into {existing}")
    return folder


def save_unet_folder(unet: nn.Module, folder: str | Path) -> Path:
    """`unet.save_pretrained` into `folder`, atomically (staged beside it, then renamed); a
    failed write (a full disk) is one `UserInputError` and leaves `folder` as it was."""
    folder = check_export_folder(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    old = staging.with_name(staging.name + ".old")
    try:
        unet.save_pretrained(staging, safe_serialization=True)
        if folder.exists():
            os.replace(folder, old)
        try:
            os.replace(staging, folder)
        except OSError:
            if old.exists() and not folder.exists():
                os.replace(old, folder)  # the earlier export stays
            raise
    except OSError as err:
        raise UserInputError(
            f"cannot write the UNet into {folder}: {err.strerror or err} (nothing was written)"
        ) from None
    finally:
        for leftover in (staging, old):
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(leftover)
    return folder


def export_finetuned_unet(
    base_unet: nn.Module,
    tensors: Mapping[str, Tensor],
    metadata: Mapping[str, str],
    folder: str | Path,
    dtype: str | None = None,
) -> Path:
    """Write `base_unet` with an artifact's fine-tuned weights applied as a diffusers folder.

    Args:
        base_unet: the base model's UNet (never mutated).
        tensors, metadata: the fine-tune artifact's (`unet.*` full weights or `lora.*` adapters).
        folder: the destination (new, empty, or an earlier export, which is replaced).
        dtype: float32 | float16 | bfloat16; None keeps the base UNet's dtype.

    Returns:
        `folder`, which `UNet2DConditionModel.from_pretrained(folder)` loads.
    """
    if dtype is not None and dtype not in EXPORT_DTYPES:
        raise UserInputError(f"dtype={dtype!r} is not one of {', '.join(EXPORT_DTYPES)}")
    folder = check_export_folder(folder)
    unet = finetuned_unet(base_unet, dict(tensors), dict(metadata))
    if dtype is not None:
        unet = unet.to(EXPORT_DTYPES[dtype])
    return save_unet_folder(unet, folder)
