"""Device and precision settings shared by every entry point (`device=`, `precision=`)."""

from __future__ import annotations

import contextlib
import logging

import torch

from editing.errors import UserInputError

log = logging.getLogger(__name__)

RANDOM_MODEL_BUILDERS = (
    "demo_world.tiny.build_tiny_model",
    "demo_world.tiny_if.build_tiny_if",
    "demo_world.tiny_sdxl.build_tiny_sdxl",
)
"""The `_target_`s of base models with random weights (tests and smoke runs)."""

AUTOCAST_DTYPES = {"32": None, "32-true": None, "bf16-mixed": "bfloat16", "16-mixed": "float16"}


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available else cpu; anything but auto, cpu, cuda, cuda:N, and a CUDA
    device without CUDA, is refused."""
    if str(name) not in ("auto", "cpu", "cuda") and not (
        str(name).startswith("cuda:") and str(name)[5:].isdigit()
    ):
        raise UserInputError(f"device={name!r} is not one of auto, cpu, cuda, cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError(f"device={name} but no CUDA device is available; use device=cpu")
    return torch.device(name)


def precision_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for `bf16-mixed` / `16-mixed`; nothing for full precision."""
    key = str(precision)
    if key not in AUTOCAST_DTYPES:
        raise UserInputError(f"precision={precision!r} is not one of {', '.join(AUTOCAST_DTYPES)}")
    if AUTOCAST_DTYPES[key] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, AUTOCAST_DTYPES[key]))


def load_base_model(base_model_cfg):
    """The configured base model (`base_model=`), saying once when its weights are random."""
    import hydra

    model = hydra.utils.instantiate(base_model_cfg)
    if base_model_cfg.get("_target_") in RANDOM_MODEL_BUILDERS:
        log.warning(
            "base_model %s has random weights: its outputs are noise (it exists for tests and smoke "
            "runs); use base_model=demo or a real model to edit a photo",
            model.name,
        )
    return model
