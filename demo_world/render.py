"""Pixels of a scene: backgrounds, anti-aliased objects and an optional "real-looking" style.

Numpy only (plus scipy.ndimage for the style's blur). Deterministic: the same scene, resolution,
generator state and style give the same bytes. The generator is consumed in a fixed order that does
not depend on the objects, so a scene and an edited copy rendered from equal generators share their
background noise and style draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from demo_world.geometry import coverage
from demo_world.scene import Scene
from demo_world.vocabulary import BACKGROUNDS, COLOURS, POSITIONS, STRIPE_PERIOD


@dataclass(frozen=True)
class RenderStyle:
    """Slightly off-distribution details for inputs that look less synthetic.

    Attributes:
        texture: standard deviation (gray levels) of a smooth brightness texture over the image.
        noise: standard deviation (levels) of independent per-pixel, per-channel noise.
        blur: Gaussian blur sigma in pixels.
        colour_jitter: largest per-channel shift (levels) of each object's colour.
    """

    texture: float = 6.0
    noise: float = 3.0
    blur: float = 0.5
    colour_jitter: float = 12.0


def _stripes(resolution: int, supersample: int = 8) -> np.ndarray:
    """+1/-1 horizontal bands, anti-aliased: float [resolution] per row."""
    ys = (np.arange(resolution * supersample) + 0.5) / (resolution * supersample)
    band = np.floor(ys / (STRIPE_PERIOD / 2)) % 2
    return (1 - 2 * band).reshape(resolution, supersample).mean(axis=1)


def background_image(name: str, resolution: int, noise: np.ndarray) -> np.ndarray:
    """Gray background `name`: float32 [H, W] in gray levels; `noise` is a standard normal [H, W]
    field used by the noisy background."""
    spec = BACKGROUNDS[name]
    rows = (np.arange(resolution) + 0.5) / resolution
    if spec.pattern == "plain":
        column = np.zeros(resolution)
    elif spec.pattern == "gradient":
        column = 1 - 2 * rows
    elif spec.pattern == "stripes":
        column = _stripes(resolution)
    elif spec.pattern == "noise":
        return (spec.level + spec.amplitude * noise).astype(np.float32)
    else:
        raise ValueError(f"background {name!r} has unknown pattern {spec.pattern!r}")
    column = spec.level + spec.amplitude * column
    return np.broadcast_to(column[:, None], (resolution, resolution)).astype(np.float32)


def object_coverage(scene: Scene, resolution: int) -> list[np.ndarray]:
    """Per object, the fraction of each pixel it covers: float32 [H, W] in [0, 1]."""
    return [coverage(obj.shape, obj.centre, obj.extent, resolution) for obj in scene.objects]


def object_masks(scene: Scene, resolution: int) -> list[np.ndarray]:
    """Per object, the pixels at least half covered by it: bool [H, W]."""
    return [c >= 0.5 for c in object_coverage(scene, resolution)]


def render(
    scene: Scene,
    resolution: int = 32,
    rng: np.random.Generator | None = None,
    style: RenderStyle | None = None,
) -> np.ndarray:
    """Render `scene` as an RGB image.

    Args:
        scene: what to draw.
        resolution: image side in pixels.
        rng: randomness for the noisy background and the style; None means a fixed seed (0).
        style: optional off-distribution details; None renders the training distribution.

    Returns:
        uint8 [resolution, resolution, 3].
    """
    rng = np.random.default_rng(0) if rng is None else rng
    noise = rng.standard_normal((resolution, resolution))
    gray = background_image(scene.background, resolution, noise)
    image = np.repeat(gray[:, :, None], 3, axis=2)
    shifts = np.zeros((len(POSITIONS), 3))
    if style is not None:
        shifts = rng.uniform(-style.colour_jitter, style.colour_jitter, size=shifts.shape)
    places = list(POSITIONS)
    for obj, alpha in zip(scene.objects, object_coverage(scene, resolution)):
        colour = (
            np.asarray(COLOURS[obj.colour], dtype=np.float32) + shifts[places.index(obj.position)]
        )
        image += alpha[:, :, None] * (colour - image)
    if style is not None:
        image = _apply_style(image, style, rng)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _apply_style(image: np.ndarray, style: RenderStyle, rng: np.random.Generator) -> np.ndarray:
    resolution = image.shape[0]
    texture = ndimage.gaussian_filter(rng.standard_normal(image.shape[:2]), resolution / 16)
    texture *= style.texture / max(float(texture.std()), 1e-6)
    image = image + texture[:, :, None]
    if style.blur > 0:
        image = ndimage.gaussian_filter(image, sigma=(style.blur, style.blur, 0), mode="nearest")
    return image + rng.normal(0.0, style.noise, size=image.shape)
