"""Writing an edit's outputs per the command-line contract.

Every edit writes into its output folder O:
- `O/edit.png`: the first (best) result, at the working size;
- `O/edit_full.png`: the same at the photo's own size (`editing.io.full_size`), when given;
- `O/samples/NNN_<label>.png`: every result when there are several (seeds, eta values, candidates);
- `O/grid.png`: the input (first cell, labelled "input") beside the results, each labelled (long
  labels wrapped, `editing.io.grid`); without an input image a crossed-out cell says so;
- `O/config.yaml`: the resolved configuration.
PNGs carry the prompt and the parameters as text metadata, one text chunk per item, plus an
A1111-style `parameters` chunk (`editing.io.png_parameters`) that PNG-info tools read.
Everything is first written into a hidden staging folder inside O (`O/.staging-<pid>-*`, on O's
filesystem even when O is a mount point) and moved into place at the end, so an interrupted run
never leaves a half-written result visible in O nor mixed with an older one. Staging folders of
dead processes are removed by the next write. A full disk is reported in one `UserInputError` line, the staging folder removed.

`EDITING_KILL_AT=<phase>` (a test hook) kills the process with SIGKILL at a named phase of the
write: "computed" (before anything is written), "mid-write" (edit.png staged, the rest not),
"before-move" (everything staged, nothing moved).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin
from torch import Tensor

from editing.errors import UserInputError
from editing.io.grid import input_tile, make_grid
from editing.io.images import to_pil
from editing.io.output_dir import pid_alive
from editing.io.png_parameters import PARAMETERS_KEY, a1111_parameters

KILL_HOOK = "EDITING_KILL_AT"
STAGING_PREFIX = ".staging-"


def kill_point(phase: str) -> None:
    """Test hook: SIGKILL this process when `EDITING_KILL_AT` names `phase`."""
    if os.environ.get(KILL_HOOK) == phase:
        os.kill(os.getpid(), signal.SIGKILL)


def remove_stale_staging(output_dir: Path) -> None:
    """Remove `O/.staging-<pid>-*` folders whose process is dead (left by killed runs)."""
    if not output_dir.is_dir():
        return
    for entry in output_dir.glob(f"{STAGING_PREFIX}*"):
        pid = entry.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if entry.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


@dataclass
class EditResult:
    """One edited image.

    Attributes:
        image: [3, H, W] float in [-1, 1].
        label: short grid label ("eta=0.7 seed=1").
        params: parameters written into the PNG metadata (prompt, seed, ...).
        score: a ranking score when the method ranks its candidates (lower is better).
    """

    image: Tensor
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    score: float | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:60] or "result"


def save_png(image: Tensor | Image.Image, path: Path, metadata: dict[str, Any]) -> None:
    """PNG with each metadata item as a text chunk (non-strings as JSON), and, when the metadata
    has a prompt, the A1111-style `parameters` chunk."""
    pil = image if isinstance(image, Image.Image) else to_pil(image)
    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value, default=str))
    parameters = a1111_parameters(metadata, pil.size)
    if parameters is not None and PARAMETERS_KEY not in metadata:
        info.add_text(PARAMETERS_KEY, parameters)
    pil.save(path, pnginfo=info)


def write_outputs(
    output_dir: str | Path,
    results: list[EditResult],
    input_image: Tensor | None,
    config_yaml: str,
    metadata: dict[str, Any] | None = None,
    full_image: Image.Image | None = None,
) -> Path:
    """Write `results` (best first) per the contract; returns the path of edit.png.
    `full_image`: the first result at the photo's own size (`O/edit_full.png`), or None."""
    if not results:
        raise ValueError("no results to write")
    output_dir = Path(output_dir)
    kill_point("computed")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(output_dir)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=output_dir))
    except OSError as err:
        raise UserInputError(_write_error(output_dir, err)) from None
    try:
        _stage(staging, results, input_image, config_yaml, metadata, full_image)
        kill_point("before-move")
        # Move into place: an older samples/ is moved aside first (replacing a non-empty
        # folder fails), then every staged entry replaces its older version.
        if (output_dir / "samples").is_dir():
            os.replace(output_dir / "samples", staging / ".old-samples")
        for entry in staging.iterdir():
            if entry.name != ".old-samples":
                os.replace(entry, output_dir / entry.name)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise UserInputError(_write_error(output_dir, err)) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir / "edit.png"


def _write_error(output_dir: Path, err: OSError) -> str:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the device of output_dir={output_dir} while writing the results: "
            "free some space and run again (nothing was written)"
        )
    return f"cannot write the results into output_dir={output_dir}: {err.strerror or err}"


def _stage(
    staging: Path,
    results: list[EditResult],
    input_image: Tensor | None,
    config_yaml: str,
    metadata: dict[str, Any] | None,
    full_image: Image.Image | None = None,
) -> None:
    common = dict(metadata or {})
    save_png(results[0].image, staging / "edit.png", {**common, **results[0].params})
    if full_image is not None:
        save_png(full_image, staging / "edit_full.png", {**common, **results[0].params})
    kill_point("mid-write")
    if len(results) > 1:
        (staging / "samples").mkdir()
        for k, result in enumerate(results):
            name = f"{k:03d}_{_slug(result.label)}.png"
            save_png(result.image, staging / "samples" / name, {**common, **result.params})
    if input_image is not None:
        tiles, labels = [to_pil(input_image)], ["input"]
    else:  # e.g. an edit from a checkpoint_dir without image=: say so rather than drop the cell
        tiles, labels = [input_tile()], ["input: not given (image=PATH)"]
    tiles += [to_pil(r.image) for r in results]
    labels += [r.label for r in results]
    save_png(make_grid(tiles, labels), staging / "grid.png", common)
    (staging / "config.yaml").write_text(config_yaml)
