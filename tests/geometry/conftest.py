"""Fixtures of the geometry tests: photos of several aspects, their masks, tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_CLIP
from PIL import Image

# (width, height) of the test photos: 4:3, 9:16 and three TEdBench-like sizes scaled down
# (450x600 -> 45x60, 1920x1080 -> 64x36, 800x533 -> 80x53).
SIZES = {
    "4:3": (40, 30),
    "9:16": (27, 48),
    "450x600": (45, 60),
    "1080p": (64, 36),
    "800x533": (80, 53),
}


def photo(folder: Path, size: tuple[int, int]) -> tuple[Path, Path]:
    """(image, mask) files of `size` = (width, height): a gradient with a red block, and a mask
    of the block's middle (white = edit)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 200 // w + 20, y * 200 // h + 20, (x + y) % 256], axis=-1).astype(np.uint8)
    rgb[h // 4 : h // 2, w // 4 : w // 2] = (220, 30, 30)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : 3 * h // 5, w // 4 : 3 * w // 5] = 255
    image_path, mask_path = folder / f"photo_{w}x{h}.png", folder / f"mask_{w}x{h}.png"
    Image.fromarray(rgb).save(image_path)
    Image.fromarray(mask).save(mask_path)
    return image_path, mask_path


@pytest.fixture(scope="session")
def tiny_pixel():
    from demo_world.tiny import build_tiny_model

    return build_tiny_model(latent=False, resolution=16)


@pytest.fixture(scope="session")
def tiny_cascade():
    from demo_world.tiny_if import build_tiny_if

    return build_tiny_if()


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    from editing.models.clip import build_clip, save_clip

    torch.manual_seed(0)
    return str(save_clip(build_clip(TINY_CLIP), tmp_path_factory.mktemp("clip")))
