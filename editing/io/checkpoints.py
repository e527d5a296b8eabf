"""Reading Lightning checkpoints without running code from them.

A `.ckpt` file is a torch pickle. `torch.load(weights_only=False)` would execute whatever the
pickle names (a crafted checkpoint can run any command); `load_checkpoint` reads with
`weights_only=True`, torch's restricted unpickler, which admits only tensors, plain containers
and numbers/strings (what this project's checkpoints hold: state dicts, optimizer and scheduler
states, loop counters, the content key). Anything else, and any truncated or empty file, is
refused with one line naming the file.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from editing.errors import UserInputError


def load_checkpoint(path: str | Path, fix: str = "") -> dict[str, Any]:
    """The checkpoint at `path` as plain data (restricted unpickling, on the CPU).

    Raises:
        UserInputError: missing, empty, truncated or unreadable file, or a pickle that names
            anything but plain data; `fix` (what to do about it) ends the message.
    """
    path = Path(path)
    tail = f": {fix}" if fix else ""
    if not path.is_file():
        raise UserInputError(f"no checkpoint at {path}{tail}")
    if path.stat().st_size == 0:
        raise UserInputError(f"{path} is an empty (0-byte) checkpoint{tail}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserInputError(
            f"{path} is refused: it holds more than plain tensors and containers, which could run "
            f"code when loaded ({first}){tail}"
        ) from None
    except (EOFError, RuntimeError, OSError, ValueError, KeyError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserInputError(f"{path} is not a readable checkpoint ({reason}){tail}") from None
    if not isinstance(state, dict):
        raise UserInputError(f"{path} is not a Lightning checkpoint (no dict at the top){tail}")
    return state
