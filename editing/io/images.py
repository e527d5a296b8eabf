"""Image and mask loading, validation and preprocessing, shared by training and editing.

Resize policy (documented in the README): an image is converted to 8-bit RGB explicitly
(grayscale, palette, CMYK and 16-bit images are converted; 32-bit integer pixels are read as 16-bit
values, floating-point pixels must lie in [0, 1]; an alpha channel is composited over white), its EXIF orientation is applied, and it is brought to its working size by the model's `SizeRule`
(`editing.io.geometry`: `image_fit=aspect` keeps the aspect at about the model's pixel count,
`center_crop` and `pad` make the model's square) with antialiased bicubic filtering. Images smaller
than 8 px on a side or larger than 2^28 pixels are refused; images smaller than the model resolution
are upscaled with a warning. The photo's own pixels are kept (`LoadedImage.photo`) for the
full-size output. Masks are read as luminance (or alpha, for RGBA masks with transparency),
thresholded at 50 % (white = region to edit), must have the image's aspect (another aspect is
refused; a scaled mask is resized to the image's size, nearest-neighbour), and go through the same
geometry with nearest-neighbour sampling (a pad is never edited). Images and masks are files or
(from the Python API, `editing_app.api`) PIL images, which go through the same checks and steps.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from editing.errors import UserInputError
from editing.io.geometry import Geometry, SizeRule, check_mask_aspect, resize_crop

__all__ = [
    "LoadedImage",
    "check_image_file",
    "from_uint8",
    "load_image",
    "load_mask",
    "load_mask_full",
    "fit_mask",
    "read_header",
    "resize_crop",
    "to_pil",
    "to_rgb",
    "to_uint8",
]

log = logging.getLogger(__name__)

MIN_SIDE = 8
MAX_PIXELS = 2**28


@dataclass(frozen=True)
class LoadedImage:
    """An input image ready for a model.

    Attributes:
        pixels: [1, 3, H, W] float32 in [-1, 1] at the working size (H, W) (`size`).
        sha256: hash of the preprocessed 8-bit pixels: the content key of artifacts.
        path: where it came from; original_size: (width, height) before preprocessing.
        geometry: how the working image was made from the photo (None for arrays given at the
            working size, `from_uint8`).
        photo: the photo's own 8-bit RGB pixels [height, width, 3] (None with `geometry`).
    """

    pixels: Tensor
    sha256: str
    path: str
    original_size: tuple[int, int]
    geometry: Geometry | None = field(default=None, compare=False)
    photo: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the working image."""
        return (int(self.pixels.shape[-2]), int(self.pixels.shape[-1]))


def read_header(path: str | Path, what: str = "image") -> Image.Image:
    """Open `path` lazily (its header only) and apply the size limits; nothing is decoded.

    The project's limit (`MAX_PIXELS`, 2^28) is the only one: PIL's own decompression-bomb guard is
    set to it, and the header's width x height is compared with it here, before anything is
    decoded. No warnings filter is changed (a filter is global to the process, so changing it here
    would race with other threads decoding images, e.g. the web app's): PIL's guard raises above
    twice the limit, and above the limit it warns, which is an error where the process made it one
    (the web server does, for the images Gradio decodes itself; the command line silences it,
    `editing_app.cli.quiet_pixel_limit_warning`) and otherwise a warning before this refusal.
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
        img = Image.open(path)
    except Image.DecompressionBombError:
        raise UserInputError(
            f"{what} {path} has more than {2 * MAX_PIXELS} pixels; {too_large}"
        ) from None
    except Image.DecompressionBombWarning as warning:  # a filter of the process made it an error
        counted = re.search(r"\((\d+) pixels\)", str(warning))
        pixels = counted.group(1) if counted else f"more than {MAX_PIXELS}"
        raise UserInputError(f"{what} {path} has {pixels} pixels; {too_large}") from None
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
        img.load()  # within the limit: PIL's guard does not fire
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


def load_image(
    source: ImageSource,
    resolution: int | SizeRule,
    what: str = "image",
    geometry: Geometry | None = None,
) -> LoadedImage:
    """Load (a file, or a PIL image as given), convert to RGB and bring it to its working size.

    Args:
        resolution: the model's `SizeRule`, or a side R: the centre R x R crop.
        geometry: use this geometry instead of planning one (a cascade's SR stage reads the
            photo again at `Geometry.scaled`); it must be of this photo's size.
    """
    rule = (
        resolution if isinstance(resolution, SizeRule) else SizeRule(resolution, 1, "center_crop")
    )
    img, path = _open_source(source, what)
    original = img.size
    if geometry is None:
        geometry = rule.plan(original, f"{what} {path}")
    elif geometry.original != original:
        raise UserInputError(
            f"{what} {path} is {original[0]}x{original[1]}, not the "
            f"{geometry.original[0]}x{geometry.original[1]} it was when first read"
        )
    if min(original) < rule.resolution:
        log.warning(
            "%s %s is %dx%d, smaller than the model resolution %d: upscaling it",
            what,
            path,
            *original,
            rule.resolution,
        )
    if original[0] != original[1] and geometry.fit != "aspect":
        log.info("%s %s is not square (%dx%d): image_fit=%s", what, path, *original, geometry.fit)
    rgb = to_rgb(img)
    fitted = geometry.fit_image(rgb, Image.Resampling.BICUBIC)
    loaded = from_uint8(np.asarray(fitted), str(path), original)
    return LoadedImage(
        loaded.pixels, loaded.sha256, loaded.path, loaded.original_size, geometry, np.asarray(rgb)
    )


def from_uint8(array: np.ndarray, path: str = "<array>", original_size=None) -> LoadedImage:
    """A `LoadedImage` from an 8-bit RGB array [H, W, 3] already at the working size."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected uint8 [H, W, 3], got {array.dtype} {array.shape}")
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    pixels = torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    size = original_size or (array.shape[1], array.shape[0])
    return LoadedImage(pixels=pixels, sha256=digest, path=path, original_size=tuple(size))


def load_mask_full(source: ImageSource, image: LoadedImage, threshold: float = 0.5) -> Tensor:
    """The binary mask [1, 1, height, width] float32 in {0, 1} (1 = edit) at the photo's own size.

    Any mode is accepted: RGBA masks with transparency use the alpha channel, everything else its
    luminance; pixels above `threshold` (of full scale) are 1. The mask must have the image's
    aspect; a scaled mask is resized to the image's size (nearest). `source`: a path or PIL image.
    """
    img, path = _open_source(source, "mask")
    check_mask_aspect(img.size, image.original_size, f"mask {path}", image.path)
    if img.mode in ("RGBA", "LA", "PA") and np.asarray(img.getchannel("A")).min() < 255:
        gray = img.getchannel("A")
    else:
        gray = to_rgb(img).convert("L")
    binary = Image.fromarray(((np.asarray(gray) / 255.0 > threshold) * 255).astype(np.uint8))
    if binary.size != image.original_size:
        binary = binary.resize(image.original_size, Image.Resampling.NEAREST)
    return torch.from_numpy(np.asarray(binary) > 127).float()[None, None]


def fit_mask(full: Tensor, image: LoadedImage, resolution: int | None = None) -> Tensor:
    """A full-size mask [1, 1, height, width] -> [1, 1, H, W] at `image`'s working size, by its
    geometry (nearest; a pad is 0), or the centre crop at `resolution` for images without one."""
    if image.geometry is None and tuple(full.shape[-2:]) == image.size:
        return full
    pil = Image.fromarray((full[0, 0].numpy() * 255).astype(np.uint8), "L")
    if image.geometry is not None:
        pil = image.geometry.fit_image(pil, Image.Resampling.NEAREST, fill="zero")
    else:
        pil = resize_crop(pil, resolution or image.size[0], Image.Resampling.NEAREST)
    return torch.from_numpy(np.asarray(pil) > 127).float()[None, None]


def load_mask(
    source: ImageSource, image: LoadedImage, resolution: int | None = None, threshold: float = 0.5
) -> Tensor:
    """A binary mask [1, 1, H, W] float32 in {0, 1} (1 = edit) aligned with `image`'s working
    image (`load_mask_full`, then `fit_mask`)."""
    return fit_mask(load_mask_full(source, image, threshold), image, resolution)


def to_uint8(x: Tensor) -> np.ndarray:
    """[3, H, W] or [1, 3, H, W] in [-1, 1] -> uint8 [H, W, 3] (clamped, rounded)."""
    if x.dim() == 4:
        x = x[0]
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).numpy()


def to_pil(x: Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(x), "RGB")
