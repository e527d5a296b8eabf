"""The working size of a photo and the way back to its own size (`image_fit`).

A model has a native resolution R (its UNet's sample size x the VAE factor) and needs each side of
its input to be a multiple m of its total downsampling (`DiffusionModel.size_multiple`: 64 px for
Stable Diffusion 1.x/2.x, the VAE's 8 x the UNet's 2^3). A photo of W x H pixels is brought to a
working size by one of three fits:

- `aspect` (default): the aspect is kept. The working size has about R^2 pixels,
  s = R / sqrt(W H), and each side is s x its side rounded to the nearest multiple of m
  (SD 1.5, R = 512: 4:3 -> 576x448... W x H = 576 x 448 for a landscape 1024x768, 448 x 576 for a
  portrait). The image is resized to it (the aspect changes by at most one multiple).
- `center_crop`: the shorter side resized to R, the centre R x R square cropped (the behaviour
  before `aspect` existed).
- `pad`: the longer side resized to R, the shorter side padded to R with its edge pixels.

`Geometry.restore` takes an edited working-size image (or an integer multiple of it, a cascade's
super-resolved output) back to the photo's own size: resized back (`aspect`), the pad removed
(`pad`), or the crop pasted back into the photo (`center_crop`).

Refused in one line (`UserInputError`): an aspect ratio beyond `MAX_ASPECT` (4:1) and a working
side under the multiple m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from editing.errors import UserInputError

FITS = ("aspect", "center_crop", "pad")
"""The `image_fit` choices; the first is the default."""
DEFAULT_FIT = FITS[0]
MAX_ASPECT = 4.0
"""The longest allowed ratio of a photo's longer side to its shorter side."""

Box = tuple[int, int, int, int]
"""(left, top, right, bottom) in pixels, PIL's crop box."""


@dataclass(frozen=True)
class SizeRule:
    """How photos are brought to a model: native side, side multiple and fit.

    Attributes:
        resolution: the model's native side R (pixels).
        multiple: every working side is a multiple of this (1: any size).
        fit: one of `FITS`.
    """

    resolution: int
    multiple: int = 1
    fit: str = DEFAULT_FIT

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise UserInputError(f"image_fit={self.fit!r} is not one of {', '.join(FITS)}")

    @classmethod
    def for_model(cls, model, fit: str = DEFAULT_FIT) -> SizeRule:
        """The rule of a `DiffusionModel` (its resolution and `size_multiple`)."""
        return cls(int(model.resolution), int(model.size_multiple), fit)

    def plan(self, original: tuple[int, int], what: str = "image") -> Geometry:
        """The `Geometry` of a photo of `original` = (width, height) pixels under this rule."""
        w, h = original
        ratio = max(w, h) / min(w, h)
        if ratio > MAX_ASPECT + 1e-9:
            raise UserInputError(
                f"{what} is {w}x{h}, an aspect ratio of {ratio:.2f}:1; at most "
                f"{MAX_ASPECT:g}:1 is supported: crop it first"
            )
        r, m = self.resolution, self.multiple
        if self.fit == "center_crop":
            s = r / min(w, h)
            new_w, new_h = max(r, round(w * s)), max(r, round(h * s))
            left, top = (new_w - r) // 2, (new_h - r) // 2
            box = (left / s, top / s, (left + r) / s, (top + r) / s)
            return Geometry(self.fit, (w, h), (r, r), tuple(round(v) for v in box))
        if self.fit == "pad":
            s = r / max(w, h)
            new_w, new_h = min(r, round(w * s)), min(r, round(h * s))
            left, top = (r - new_w) // 2, (r - new_h) // 2
            return Geometry(self.fit, (w, h), (r, r), (left, top, left + new_w, top + new_h))
        s = r / math.sqrt(w * h)
        size = (round(h * s / m) * m, round(w * s / m) * m)
        if min(size) < m:
            raise UserInputError(
                f"{what} is {w}x{h}: at this model's {r} px its shorter side would be "
                f"{min(h, w) * s:.0f} px, under the {m} px the model needs; give a less elongated "
                "image or image_fit=center_crop"
            )
        return Geometry(self.fit, (w, h), size, (0, 0, size[1], size[0]))


@dataclass(frozen=True)
class Geometry:
    """Where a photo's working image comes from.

    Attributes:
        fit: one of `FITS`.
        original: (width, height) of the photo.
        size: (H, W) of the working image.
        box: center_crop: the region of the photo the working image shows (photo pixels);
            pad: the region of the working image the photo fills (working pixels);
            aspect: the whole working image.
    """

    fit: str
    original: tuple[int, int]
    size: tuple[int, int]
    box: Box

    def scaled(self, factor: int) -> Geometry:
        """The same fit at `factor` x the working size (a cascade's SR stage)."""
        box = self.box if self.fit == "center_crop" else tuple(v * factor for v in self.box)
        return Geometry(
            self.fit, self.original, (self.size[0] * factor, self.size[1] * factor), box
        )

    def fit_image(self, img: Image.Image, resample: int, fill: str = "edge") -> Image.Image:
        """A photo (PIL, `original` size) at the working size (W x H); `fill` of the pad: "edge"
        (its edge pixels, images) or "zero" (masks: the pad is never edited)."""
        h, w = self.size
        if self.fit == "center_crop":
            return resize_crop(img, h, resample)
        if self.fit == "aspect":
            return img.resize((w, h), resample=resample, reducing_gap=None)
        left, top, right, bottom = self.box
        inner = np.asarray(img.resize((right - left, bottom - top), resample, reducing_gap=None))
        pad = ((top, h - bottom), (left, w - right)) + ((0, 0),) * (inner.ndim - 2)
        mode = "edge" if fill == "edge" else "constant"
        return Image.fromarray(np.pad(inner, pad, mode=mode), img.mode)

    def restore(self, edited: Image.Image, photo: Image.Image | None = None) -> Image.Image:
        """An edited image (PIL, the working size or an integer multiple of it) at the photo's
        own size. center_crop pastes the crop back into `photo` (required there)."""
        factor = edited.size[1] / self.size[0]
        if self.fit == "aspect":
            return edited.resize(self.original, Image.Resampling.BICUBIC, reducing_gap=None)
        if self.fit == "pad":
            box = tuple(round(v * factor) for v in self.box)
            inner = edited.crop(box)
            return inner.resize(self.original, Image.Resampling.BICUBIC, reducing_gap=None)
        if photo is None:
            raise ValueError("restoring a centre crop needs the photo it was cut from")
        left, top, right, bottom = self.box
        patch = edited.resize((right - left, bottom - top), Image.Resampling.BICUBIC)
        out = photo.convert("RGB").copy()
        out.paste(patch, (left, top))
        return out


def resize_crop(img: Image.Image, side: int, resample: int) -> Image.Image:
    """The shorter side resized to `side`, then the centre `side` x `side` square cropped."""
    w, h = img.size
    scale = side / min(w, h)
    new_w, new_h = max(side, round(w * scale)), max(side, round(h * scale))
    img = img.resize((new_w, new_h), resample=resample, reducing_gap=None)
    left, top = (new_w - side) // 2, (new_h - side) // 2
    return img.crop((left, top, left + side, top + side))


def check_mask_aspect(
    mask_size: tuple[int, int], image_size: tuple[int, int], what: str, image_name: str
) -> None:
    """Refuse a mask whose aspect differs from its image's by more than one pixel's rounding."""
    (mw, mh), (w, h) = mask_size, image_size
    if abs(mw * h - mh * w) > max(w, h, mw, mh):
        raise UserInputError(
            f"{what} is {mw}x{mh} but image {image_name} is {w}x{h}, another aspect ratio: give a mask of "
            "the image's size (or a scaled copy of it)"
        )
