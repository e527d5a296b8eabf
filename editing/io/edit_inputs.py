"""What the user gave for one edit or one training stage, validated once and passed around."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from editing.io.images import LoadedImage


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
