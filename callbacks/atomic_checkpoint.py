"""Lightning checkpoints written atomically beside their target.

Lightning's own writer stages a checkpoint in the system temp folder and moves it into place;
when output_dir is on another filesystem that move is a copy, so a kill during it (or a full
disk) leaves a truncated `last.ckpt` and a temp file. `AtomicCheckpointIO` writes the temp file
in the checkpoint's own folder, fsyncs it and renames it (`editing.io.atomic.atomic_file`): the
previous checkpoint stays intact until the new one is complete, and the temp file is removed on
every exit path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from editing.io.atomic import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_file(path, "checkpoint") as tmp:
            torch.save(checkpoint, tmp)
