"""Uploads into a session folder, checked as the command line checks its files.

An upload arrives as a file the server itself stored (Gradio's upload folder, which lies under the
session root); no path a user types is ever opened. Before anything decodes it the file must lie
in that folder, be no larger than `app.max_upload_mb`, and pass `editing.io.images.read_header`
(an image format PIL knows, at least 8 px a side, at most 2^28 pixels: a decompression bomb is
refused from its header). It is then copied into the session folder, and every later step reads
that copy. A drawn mask comes back as the editor's layers: what was painted (alpha > 0) is the
region to edit, written as a white-on-black PNG into the session folder.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from editing.errors import UserInputError
from editing.io.images import check_image_file, read_header, to_rgb

__all__ = ["accept_upload", "mask_from_layers", "preview"]

PREVIEW_SIDE = 512
"""The longest side of the photo shown in the mask editor (a drawn mask is resized to the photo,
as any scaled mask is)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def accept_upload(
    upload: str | Path, what: str, upload_root: Path, folder: Path, max_bytes: int
) -> Path:
    """Check an uploaded image file and copy it into `folder`; returns the copy.

    Args:
        upload: the file the server stored for the upload (must lie under `upload_root`).
        what: `photo` or `mask`, for the messages and the copy's name (`<what>-<sha>.<ext>`).
        max_bytes: the size limit.

    Raises:
        UserInputError: a file outside the upload folder, too large, unreadable, a bomb.
    """
    path = Path(upload).resolve()
    if not path.is_relative_to(upload_root.resolve()) or not path.is_file():
        raise UserInputError(f"the {what} must be uploaded through the page")
    size = path.stat().st_size
    if size > max_bytes:
        raise UserInputError(
            f"the {what} file is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB "
            "(app.max_upload_mb)"
        )
    try:
        with read_header(path, what) as img:  # a bomb is refused here, from its header
            suffix = (img.format or "png").lower()
        check_image_file(path, what)  # then decoded once, as edit.py does before a model loads
    except UserInputError as err:  # named by the file's own name, not the server's folder
        raise UserInputError(str(err).replace(str(path), path.name)) from None
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{what}-{_sha256(path)[:16]}.{suffix}"
    if not copy.is_file():
        shutil.copyfile(path, copy)
    return copy


def preview(photo: Path, folder: Path) -> Path:
    """A copy of the (checked) photo at most `PREVIEW_SIDE` px a side, for the mask editor."""
    out = folder / f"preview-{photo.stem}.png"
    if not out.is_file():
        with read_header(photo, "photo") as img:
            rgb = to_rgb(ImageOps.exif_transpose(img))  # the orientation the photo is edited in
        rgb.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
        rgb.save(out)
    return out


def mask_from_layers(layers: list[np.ndarray] | None, folder: Path) -> Path | None:
    """The painted pixels of the mask editor's layers ([H, W, 4] uint8 RGBA) as a mask PNG in
    `folder` (white = edit); None when nothing was painted."""
    painted = None
    for layer in layers or []:
        array = np.asarray(layer)
        if array.ndim != 3 or array.shape[-1] != 4:
            continue
        hit = array[..., 3] > 0
        painted = hit if painted is None else painted | hit
    if painted is None or not painted.any():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "mask-drawn.png"
    Image.fromarray(painted.astype(np.uint8) * 255, mode="L").save(out)
    return out
