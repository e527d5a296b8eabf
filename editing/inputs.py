"""What the user gave for one edit or one training stage, validated once and passed around."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from editing.images import LoadedImage


@dataclass
class Inputs:
    """The common top-level inputs of train.py and edit.py.

    Attributes:
        image: the preprocessed input image (None for methods that read everything from artifacts).
        mask: [1, 1, R, R] in {0, 1} (1 = region to edit) or None.
        source_prompt: caption of the input image ("" allowed where a method allows it).
        target_prompt: the edit text.
        output_dir: where outputs go (train: artifacts; edit: images).
        checkpoint_dir: where artifacts are read from (edit) / written to (train).
        seed: base seed.
    """

    image: LoadedImage | None = None
    mask: Tensor | None = None
    source_prompt: str = ""
    target_prompt: str = ""
    output_dir: Path | None = None
    checkpoint_dir: Path | None = None
    seed: int = 0


def inputs_from_config(cfg, model, need_image: bool = False) -> Inputs:
    """Build `Inputs` from the top-level keys of a train/edit config, at `model`'s resolution."""
    from editing.errors import UserInputError
    from editing.images import load_image, load_mask

    image = load_image(cfg.image, model.resolution) if cfg.get("image") else None
    if need_image and image is None:
        raise UserInputError("this needs image=PATH (the photograph to edit)")
    mask = None
    if cfg.get("mask"):
        if image is None:
            raise UserInputError("mask=... was given without image=...: a mask belongs to an image")
        mask = load_mask(cfg.mask, image, model.resolution)
    output_dir = Path(cfg.output_dir) if cfg.get("output_dir") else None
    checkpoint_dir = Path(cfg.checkpoint_dir) if cfg.get("checkpoint_dir") else None
    return Inputs(
        image=image,
        mask=mask,
        source_prompt=cfg.get("source_prompt") or "",
        target_prompt=cfg.get("target_prompt") or "",
        output_dir=output_dir,
        checkpoint_dir=checkpoint_dir,
        seed=int(cfg.get("seed") or 0),
    )
