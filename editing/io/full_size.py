"""The edit at the photo's own size (`O/edit_full.png`).

An edit runs at the working size (`editing.io.geometry`); its result goes back to the photo's size
by the image's `Geometry.restore` (resized back for `aspect`, the pad removed for `pad`, the crop
pasted into the photo for `center_crop`). A masked method (Blended, Blended Latent) names its
edited region at full size (`editor.full_size_region(inputs)`): outside it the photo's own pixels
are pasted back, so the untouched region is bit-exact at the original resolution; `feather` px
(at full size) soften the edge outwards, and pixels farther than that from the region are the
photo's, bit-exact, too.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from editing.io.edit_inputs import Inputs
from editing.io.images import to_pil


def feather_alpha(region: Tensor, feather: int) -> Tensor:
    """The paste weight [height, width] in [0, 1] of the edit for a region [1, 1, height, width]
    in {0, 1}: 1 inside, the region box-blurred over (2 feather + 1) px outside it, exactly 0
    farther than `feather` px (Chebyshev distance) from it. feather=0: the region itself."""
    if feather <= 0:
        return region[0, 0].float()
    k = 2 * int(feather) + 1
    blurred = F.avg_pool2d(region.float(), (1, k), stride=1, padding=(0, feather))
    blurred = F.avg_pool2d(blurred, (k, 1), stride=1, padding=(feather, 0))
    return torch.maximum(region.float(), blurred)[0, 0]


def paste_outside(photo: np.ndarray, edited: np.ndarray, alpha: Tensor) -> np.ndarray:
    """uint8 [h, w, 3]: `edited` where alpha is 1, `photo` where it is 0 (bit-exact), blended
    (rounded) between."""
    a = alpha.numpy().astype(np.float32)[..., None]
    mixed = np.round(photo.astype(np.float32) * (1 - a) + edited.astype(np.float32) * a)
    out = np.where(a > 0, mixed.clip(0, 255).astype(np.uint8), photo)
    return np.where(a >= 1, edited, out)


def full_size_image(image: Tensor, inputs: Inputs, editor=None) -> Image.Image | None:
    """A result [3, H, W] in [-1, 1] (the working size or a cascade's multiple of it) at the
    photo's own size, or None without a photo (an edit from artifacts alone, an array input)."""
    loaded = inputs.image
    if loaded is None or loaded.geometry is None or loaded.photo is None:
        return None
    photo = Image.fromarray(loaded.photo, "RGB")
    restored = loaded.geometry.restore(to_pil(image), photo)
    region_of = getattr(editor, "full_size_region", None)
    region = region_of(inputs) if region_of is not None else None
    if region is None:
        return restored
    alpha = feather_alpha(region, int(getattr(editor, "feather", 0)))
    pasted = paste_outside(loaded.photo, np.asarray(restored), alpha)
    return Image.fromarray(pasted, "RGB")
