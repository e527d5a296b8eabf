"""Shared fixtures: offline, single-threaded, seeded, tiny real components."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One thread per process (below); cpu_threads=auto keeps an explicit OMP_NUM_THREADS.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Two cores are shared by everything on CI machines: one thread per process avoids
# oversubscription (and makes CPU results independent of the thread count).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model():
    from demo_world.tiny import build_tiny_model

    return build_tiny_model()


@pytest.fixture(scope="session")
def tiny_v_model():
    from demo_world.tiny import build_tiny_model

    return build_tiny_model(prediction_type="v_prediction")


@pytest.fixture(scope="session")
def tiny_sdxl_model():
    from demo_world.tiny_sdxl import build_tiny_sdxl

    return build_tiny_sdxl()


@pytest.fixture
def image_path(tmp_path: Path) -> Path:
    """A 40x48 RGB image with some structure (gradient + a square)."""
    y, x = np.mgrid[0:40, 0:48]
    rgb = np.stack([x * 5, y * 6, (x + y) * 3], axis=-1).astype(np.uint8)
    rgb[10:25, 12:30] = (220, 30, 30)
    path = tmp_path / "input.png"
    Image.fromarray(rgb).save(path)
    return path


def make_image(path: Path, size=(32, 32), mode="RGB", color=(200, 40, 40)) -> Path:
    Image.new(mode, size, color if mode in ("RGB", "RGBA") else 128).save(path)
    return path
