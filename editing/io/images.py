"""Image and mask loading, validation and preprocessing, shared by training and editing.

Resize policy (documented in the README): an image is converted to 8-bit RGB explicitly
(grayscale, palette, CMYK and 16-bit images are converted; 32-bit integer pixels are read as 16-bit
values, floating-point pixels must lie in [0, 1]; an alpha channel is composited over white), its EXIF orientation is applied, its shorter side is resized to the model resolution with
antialiased bicubic filtering and the centre square is cropped. Images smaller than 8 px on a side
or larger than 2^28 pixels are refused; images smaller than the model resolution are upscaled with a
warning. Masks are read as luminance (or alpha, for RGBA masks with transparency), thresholded at
50 % (white = region to edit), must have the image's original size (a mismatch is refused), and go
through the same resize/crop with nearest-neighbour sampling. Images and masks are files or
(from the Python API, `editing_app.api`) PIL images, which go through the same checks and steps.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from editing.errors import UserInputError

log = logging.getLogger(__name__)

MIN_SIDE = 8
MAX_PIXELS = 2**28


@dataclass(frozen=True)
class LoadedImage:
    """An input image ready for a model.

    Attributes:
        pixels: [1, 3, R, R] float32 in [-1, 1] (R = model resolution).
        sha256: hash of the preprocessed 8-bit pixels: the content key of artifacts.
        path: where it came from; original_size: (width, height) before preprocessing.
    """

    pixels: Tensor
    sha256: str
    path: str
    original_size: tuple[int, int]


def read_header(path: str | Path, what: str = "image") -> Image.Image:
    """Open `path` lazily (its header only) and apply the size limits; nothing is decoded.

    The project's limit (`MAX_PIXELS`, 2^28) is the only one: PIL's own decompression-bomb guard is
    set to it (PIL warns above its limit, which this check handles, and refuses above twice it).
    """
    path = Path(path)
    if path.is_dir():
        raise UserInputError(
            f"{what}={path} is a directory, not an image file: give a PNG or JPEG file"
        )
    if not path.is_file():
        raise UserInputError(f"{what} file not found: {path}")
    too_large = f"downscale it to at most {MAX_PIXELS} pixels (2^28)"
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError:
        raise UserInputError(
            f"{what} {path} has more than {2 * MAX_PIXELS} pixels; {too_large}"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserInputError(
            f"cannot read {what} {path}: {err}. Give a PNG or JPEG file."
        ) from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise UserInputError(f"{what} {path} is {w}x{h}; {too_large}")
    if min(w, h) < MIN_SIDE:
        img.close()
        raise UserInputError(
            f"{what} {path} is only {w}x{h} pixels; give at least {MIN_SIDE}x{MIN_SIDE}"
        )
    return img


def _open(path: str | Path, what: str) -> Image.Image:
    img = read_header(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserInputError(
            f"cannot read {what} {path}: {err}. Give a PNG or JPEG file."
        ) from None
    return ImageOps.exif_transpose(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode, explicitly: 16/32-bit scaled, alpha composited over white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.uint16).astype(np.float32) / 257.0
        return Image.fromarray(np.round(arr).astype(np.uint8), "L").convert("RGB")
    if mode == "I":  # 32-bit integer pixels: PIL's mode for 16-bit PNGs/TIFFs (0..65535)
        arr = np.asarray(img, dtype=np.float64)
        if arr.min() < 0 or arr.max() > 65535:
            raise UserInputError(
                "32-bit integer image outside 0..65535: convert it to 8 or 16 bits"
            )
        return Image.fromarray(np.round(arr / 257.0).astype(np.uint8), "L").convert("RGB")
    if mode == "F":  # floating-point pixels: only the unambiguous [0, 1] range is accepted
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise UserInputError(
                "floating-point image with values outside [0, 1]: its range is ambiguous; "
                "convert it to 8 or 16 bits"
            )
        return Image.fromarray(np.round(arr * 255.0).astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def resize_crop(img: Image.Image, resolution: int, resample: int) -> Image.Image:
    w, h = img.size
    scale = resolution / min(w, h)
    new_w, new_h = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    img = img.resize((new_w, new_h), resample=resample, reducing_gap=None)
    left, top = (new_w - resolution) // 2, (new_h - resolution) // 2
    return img.crop((left, top, left + resolution, top + resolution))


def _from_pil(img: Image.Image, what: str) -> Image.Image:
    """An in-memory PIL image through the checks and EXIF orientation a file gets in `_open`."""
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise UserInputError(
            f"{what} is {w}x{h}; downscale it to at most {MAX_PIXELS} pixels (2^28)"
        )
    if min(w, h) < MIN_SIDE:
        raise UserInputError(f"{what} is only {w}x{h} pixels; give at least {MIN_SIDE}x{MIN_SIDE}")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise UserInputError(f"cannot read {what}: {err}") from None
    return ImageOps.exif_transpose(img)


ImageSource = str | Path | Image.Image
"""A file path or an already opened PIL image (the Python API passes PIL images)."""


def _open_source(source: ImageSource, what: str) -> tuple[Image.Image, str]:
    """(image, name for messages) from a path or a PIL image; a PIL image is never modified."""
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or f"<PIL {what}>"
        return _from_pil(source, f"{what} {name}"), name
    return _open(source, what), str(source)


def check_image_file(path: str | Path, what: str = "image") -> None:
    """Open and decode the file (cheap) so a bad image fails before any model is loaded."""
    _open(path, what)


def load_image(source: ImageSource, resolution: int, what: str = "image") -> LoadedImage:
    """Load (a file, or a PIL image as given), convert to RGB, resize the shorter side to
    `resolution` and centre-crop."""
    img, path = _open_source(source, what)
    original = img.size
    if min(original) < resolution:
        log.warning(
            "%s %s is %dx%d, smaller than the model resolution %d: upscaling it",
            what,
            path,
            *original,
            resolution,
        )
    if original[0] != original[1]:
        log.info("%s %s is not square (%dx%d): centre-cropping", what, path, *original)
    rgb = resize_crop(to_rgb(img), resolution, Image.Resampling.BICUBIC)
    return from_uint8(np.asarray(rgb), str(path), original)


def from_uint8(array: np.ndarray, path: str = "<array>", original_size=None) -> LoadedImage:
    """A `LoadedImage` from an 8-bit RGB array [H, W, 3] already at the model resolution."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected uint8 [H, W, 3], got {array.dtype} {array.shape}")
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    pixels = torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    size = original_size or (array.shape[1], array.shape[0])
    return LoadedImage(pixels=pixels, sha256=digest, path=path, original_size=tuple(size))


def load_mask(
    source: ImageSource, image: LoadedImage, resolution: int, threshold: float = 0.5
) -> Tensor:
    """A binary mask [1, 1, R, R] float32 in {0, 1} (1 = edit) aligned with `image`.

    Any mode is accepted: RGBA masks with transparency use the alpha channel, everything else its
    luminance; pixels above `threshold` (of full scale) are 1. The mask must have the image's
    original size. `source` is a file path or a PIL image.
    """
    img, path = _open_source(source, "mask")
    if img.size != image.original_size:
        raise UserInputError(
            f"mask {path} is {img.size[0]}x{img.size[1]} but image {image.path} is "
            f"{image.original_size[0]}x{image.original_size[1]}: give a mask of the image's size"
        )
    if img.mode in ("RGBA", "LA", "PA") and np.asarray(img.getchannel("A")).min() < 255:
        gray = img.getchannel("A")
    else:
        gray = to_rgb(img).convert("L")
    gray = resize_crop(gray, resolution, Image.Resampling.NEAREST)
    values = np.asarray(gray, dtype=np.float32) / 255.0
    return torch.from_numpy((values > threshold).astype(np.float32))[None, None]


def to_uint8(x: Tensor) -> np.ndarray:
    """[3, H, W] or [1, 3, H, W] in [-1, 1] -> uint8 [H, W, 3] (clamped, rounded)."""
    if x.dim() == 4:
        x = x[0]
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).numpy()


def to_pil(x: Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(x), "RGB")
