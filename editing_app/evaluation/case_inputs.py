"""A suite case -> the `Inputs` a stage or an editor takes, at the model's resolution.

Images go through exactly the preprocessing of `train.py` / `edit.py` (`editing.io.images`): a path
is read with `load_image`; an in-memory uint8 array is converted, resized (shorter side, bicubic)
and centre-cropped the same way and wrapped with `from_uint8`. Masks take the same resize/crop with
nearest-neighbour sampling and must have the image's original size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import LoadedImage, from_uint8, load_image, resize_crop, to_rgb
from editing_app.evaluation.rle import RleMask
from editing_app.evaluation.suites import Case

__all__ = ["case_image", "case_inputs", "case_mask", "case_target"]


def _array_image(array: np.ndarray, resolution: int, name: str) -> LoadedImage:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise UserInputError(
            f"case {name}: image must be uint8 [H, W, 3], got {array.dtype} {array.shape}"
        )
    h, w = array.shape[:2]
    if (h, w) != (resolution, resolution):
        pil = resize_crop(to_rgb(Image.fromarray(array)), resolution, Image.Resampling.BICUBIC)
        array = np.asarray(pil)
    return from_uint8(array, f"<{name}>", (w, h))


def case_image(case: Case, resolution: int) -> LoadedImage:
    """The case's image, preprocessed for a model of `resolution` ([1, 3, R, R] in [-1, 1])."""
    if isinstance(case.image, np.ndarray):
        return _array_image(case.image, resolution, case.case_id)
    return load_image(Path(case.image), resolution)


def case_mask(case: Case, image: LoadedImage, resolution: int) -> Tensor | None:
    """The case's mask as [1, 1, R, R] float32 in {0, 1} (1 = edit), or None."""
    if case.mask is None:
        return None
    w, h = image.original_size
    if isinstance(case.mask, RleMask):
        mask = case.mask.decode((h, w))
    else:
        mask = np.asarray(case.mask).astype(bool)
        if mask.shape != (h, w):
            raise UserInputError(
                f"case {case.case_id}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is {w}x{h}"
            )
    pil = Image.fromarray(mask.astype(np.uint8) * 255, "L")
    pil = resize_crop(pil, resolution, Image.Resampling.NEAREST)
    values = np.asarray(pil) > 127
    return torch.from_numpy(values.astype(np.float32))[None, None]


def case_target(case: Case, resolution: int) -> Tensor | None:
    """The ideal result (demo world's `target_image`) as [1, 3, R, R] in [-1, 1], or None."""
    target = case.extra.get("target_image")
    if target is None:
        return None
    return _array_image(np.asarray(target), resolution, f"{case.case_id} target").pixels


def case_inputs(case: Case, resolution: int, seed: int, checkpoint_dir: Path) -> Inputs:
    """`Inputs` for stages and editors: image, mask, prompts; artifacts in `checkpoint_dir`."""
    image = case_image(case, resolution)
    return Inputs(
        image=image,
        mask=case_mask(case, image, resolution),
        source_prompt=case.source_prompt,
        target_prompt=case.target_prompt,
        output_dir=checkpoint_dir,
        checkpoint_dir=checkpoint_dir,
        seed=int(seed),
    )
