"""The common top-level settings of train.py / edit.py (`image`, `mask`, prompts, folders, seed)
read into the core's `Inputs`."""

from __future__ import annotations

from pathlib import Path

from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.geometry import DEFAULT_FIT, SizeRule
from editing.io.images import fit_mask, load_image, load_mask_full


def inputs_from_config(cfg, model, need_image: bool = False) -> Inputs:
    """Build `Inputs` from the top-level keys of a train/edit config, at `model`'s working size
    for the image (`image_fit`)."""
    image = None
    if cfg.get("image"):
        rule = SizeRule.for_model(model, cfg.get("image_fit") or DEFAULT_FIT)
        image = load_image(cfg.image, rule)
    if need_image and image is None:
        raise UserInputError("this needs image=PATH (the photograph to edit)")
    mask = full_mask = None
    if cfg.get("mask"):
        if image is None:
            raise UserInputError("mask=... was given without image=...: a mask belongs to an image")
        full_mask = load_mask_full(cfg.mask, image)
        mask = fit_mask(full_mask, image)
    output_dir = Path(cfg.output_dir) if cfg.get("output_dir") else None
    checkpoint_dir = Path(cfg.checkpoint_dir) if cfg.get("checkpoint_dir") else None
    return Inputs(
        image=image,
        mask=mask,
        full_mask=full_mask,
        source_prompt=cfg.get("source_prompt") or "",
        target_prompt=cfg.get("target_prompt") or "",
        output_dir=output_dir,
        checkpoint_dir=checkpoint_dir,
        seed=int(cfg.get("seed") or 0),
    )
