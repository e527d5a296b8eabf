"""What the user gave for one edit or one training stage, validated once and passed around."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from editing.io.artifacts import Artifact
from editing.io.images import LoadedImage


@dataclass
class Inputs:
    """The common top-level inputs of train.py and edit.py.

    Attributes:
        image: the preprocessed input image (None for methods that read everything from artifacts).
        mask: [1, 1, H, W] in {0, 1} (1 = region to edit) at the image's working size, or None.
        full_mask: the same mask [1, 1, height, width] at the photo's own size (the full-size
            output's paste-back), or None.
        source_prompt: caption of the input image ("" allowed where a method allows it).
        target_prompt: the edit text.
        output_dir: where outputs go (train: artifacts; edit: images).
        checkpoint_dir: where artifacts are read from (edit) / written to (train).
        seed: base seed.
        artifacts: artifacts already in memory, by file path (`checkpoint_dir/<stage>.safetensors`):
            editors use these instead of reading the files (`load_artifact(..., loaded=...)`).
            The Python API fills it so that one training run serves many edits; train.py and
            edit.py leave it empty and every artifact is read from checkpoint_dir.
    """

    image: LoadedImage | None = None
    mask: Tensor | None = None
    full_mask: Tensor | None = None
    source_prompt: str = ""
    target_prompt: str = ""
    output_dir: Path | None = None
    checkpoint_dir: Path | None = None
    seed: int = 0
    artifacts: dict[Path, Artifact] = field(default_factory=dict)
