"""The attribute oracle: reads a shapes-world image back into colours, shapes, sizes, positions and
the background, and judges a reading against the scene it should show.

How it reads (robust to noise, blur and the sloppy shapes of a small generative model):
1. Objects are saturated, backgrounds are gray: chroma (max - min over RGB) seeds objects; connected
   components smaller than a speck are ignored.
2. Colour: chroma-weighted circular mean hue of each object's core, nearest palette hue.
3. A soft mask (chroma relative to the object's core chroma: the anti-aliased coverage on a gray
   background) is fitted with every shape's template (`demo_world.fit`); the best fit names the
   shape, and its box gives the size (nearest in log scale) and the position (nearest grid centre
   per axis).
4. The background is read from the remaining pixels (see `demo_world.backdrop`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from demo_world.backdrop import read_background
from demo_world.fit import fit_shape
from demo_world.scene import ObjectSpec, Scene
from demo_world.vocabulary import COLOURS, GRID_CENTRES, POSITIONS, SIZES

if TYPE_CHECKING:
    import torch

CHROMA_SEED = 60.0  # levels; object colours have chroma >= 140, backgrounds ~0
MIN_AREA_FRACTION = 0.008  # specks below this fraction of the image are ignored (8 px at 32x32)
STRONG = 0.7  # fraction of an object's chroma that marks its core when splitting touching objects
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass
class ObjectReading:
    """One object as read from pixels.

    Attributes:
        colour, shape, size, position: vocabulary names.
        area: pixels in `mask`.
        centroid: (x, y) centre of mass in pixels (pixel centres at i + 0.5).
        mask: bool [H, W], pixels at least half covered by the object.
        centre: (x, y) centre of the fitted bounding box, fractions of the image side.
        extent: side of the fitted bounding box, fraction of the image side.
        hue: mean hue in degrees [0, 360).
        shape_scores: soft IoU of the object with each shape's fitted template, in [0, 1].
    """

    colour: str
    shape: str
    size: str
    position: str
    area: int
    centroid: tuple[float, float]
    mask: np.ndarray = field(repr=False)
    centre: tuple[float, float] = (0.5, 0.5)
    extent: float = 0.0
    hue: float = 0.0
    shape_scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Reading:
    """What an image shows: the background name and its objects, largest first."""

    background: str
    objects: list[ObjectReading]


def to_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 [H, W, 3] from a uint8 [H, W, 3] array or a float tensor/array [3, H, W] in [-1, 1]."""
    if type(image).__module__.startswith("torch"):
        image = image.detach().float().cpu().numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[0] == 3 and np.issubdtype(image.dtype, np.floating):
        return np.round((np.clip(image, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0)
    raise ValueError(
        f"expected uint8 [H, W, 3] or float [3, H, W] in [-1, 1], got {image.dtype} {image.shape}"
    )


def hue_degrees(rgb: np.ndarray) -> np.ndarray:
    """HSV hue in degrees [0, 360) of float RGB values [..., 3] (0 where chroma is 0)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    chroma = np.maximum(high - low, 1e-6)
    hue = np.where(
        high == r, (g - b) / chroma, np.where(high == g, 2 + (b - r) / chroma, 4 + (r - g) / chroma)
    )
    return (hue * 60.0) % 360.0


_PALETTE_HUES = {
    name: float(hue_degrees(np.asarray(rgb, dtype=np.float64))) for name, rgb in COLOURS.items()
}


def nearest_colour(hue: float) -> str:
    """The palette colour whose hue is nearest (circularly) to `hue` degrees."""
    return min(_PALETTE_HUES, key=lambda c: abs((hue - _PALETTE_HUES[c] + 180) % 360 - 180))


def nearest_size(extent: float) -> str:
    """The size name nearest to `extent` (fraction of the image side) in log scale."""
    return min(SIZES, key=lambda s: abs(np.log(extent / SIZES[s])))


def nearest_position(centre: tuple[float, float]) -> str:
    """The 3x3 grid place nearest to `centre` ((x, y) fractions of the image side)."""
    column = int(np.argmin([abs(centre[0] - g) for g in GRID_CENTRES]))
    row = int(np.argmin([abs(centre[1] - g) for g in GRID_CENTRES]))
    return next(name for name, cell in POSITIONS.items() if cell == (column, row))


def _read_object(
    rgb: np.ndarray, chroma: np.ndarray, part: np.ndarray, region: np.ndarray
) -> ObjectReading:
    """Read one object from its segmented pixels `part` and the pixels `region` it may cover."""
    values = chroma[part]
    core = part & (chroma >= 0.75 * np.percentile(values, 90))
    weights = chroma[core]
    angles = np.deg2rad(hue_degrees(rgb[core]))
    hue = np.rad2deg(np.arctan2(weights @ np.sin(angles), weights @ np.cos(angles))) % 360
    reference = float(np.median(weights))
    alpha = np.where(region, np.clip(chroma / reference, 0.0, 1.0), 0.0)
    shape, centre, extent, scores = fit_shape(alpha)
    mask = alpha >= 0.5
    ys, xs = np.nonzero(mask)
    return ObjectReading(
        colour=nearest_colour(float(hue)),
        shape=shape,
        size=nearest_size(extent),
        position=nearest_position(centre),
        area=int(mask.sum()),
        centroid=(float(xs.mean() + 0.5), float(ys.mean() + 0.5)) if xs.size else (0.0, 0.0),
        mask=mask,
        centre=centre,
        extent=extent,
        hue=float(hue),
        shape_scores=scores,
    )


def _split(component: np.ndarray, chroma: np.ndarray, min_area: int) -> list[np.ndarray]:
    """Split a component where objects touch through their anti-aliased rims: the pixels above
    STRONG of the component's chroma form cores; with two or more sizeable cores, every pixel goes
    to the nearest core."""
    strong = component & (chroma >= STRONG * np.percentile(chroma[component], 90))
    cores, count = ndimage.label(strong, structure=_EIGHT)
    areas = ndimage.sum_labels(strong, cores, index=np.arange(1, count + 1))
    kept = [i + 1 for i in range(count) if areas[i] >= min_area]
    if len(kept) < 2:
        return [component]
    seeds = np.isin(cores, kept)
    _, (iy, ix) = ndimage.distance_transform_edt(~seeds, return_indices=True)
    nearest = cores[iy, ix]
    return [component & (nearest == k) for k in kept]


def segment(chroma: np.ndarray, min_area: int) -> list[np.ndarray]:
    """Object parts: bool [H, W] masks of saturated pixels, one per object, specks dropped."""
    labels, count = ndimage.label(chroma > CHROMA_SEED, structure=_EIGHT)
    areas = ndimage.sum_labels(np.ones_like(chroma), labels, index=np.arange(1, count + 1))
    parts = []
    for i in range(count):
        if areas[i] >= min_area:
            parts += _split(labels == i + 1, chroma, min_area)
    return parts


def read_image(image: np.ndarray | torch.Tensor) -> Reading:
    """Read the background and objects of a shapes-world image.

    Args:
        image: uint8 numpy [H, W, 3] (square), or a torch tensor / float array [3, H, W] in [-1, 1].

    Returns:
        The reading, objects sorted by area (largest first).
    """
    rgb = to_uint8(image).astype(np.float32)
    if rgb.shape[0] != rgb.shape[1]:
        raise ValueError(f"expected a square image, got {rgb.shape[1]}x{rgb.shape[0]}")
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    min_area = max(3, int(round(MIN_AREA_FRACTION * rgb.shape[0] * rgb.shape[1])))
    parts = segment(chroma, min_area)
    objects = []
    if parts:
        ids = np.zeros(chroma.shape, dtype=np.int32)
        for i, part in enumerate(parts):
            ids[part] = i + 1
        _, (iy, ix) = ndimage.distance_transform_edt(ids == 0, return_indices=True)
        owner = ids[iy, ix]
        for i, part in enumerate(parts):
            region = ndimage.binary_dilation(part, _EIGHT, iterations=2) & (owner == i + 1)
            objects.append(_read_object(rgb, chroma, part, region))
    objects.sort(key=lambda o: o.area, reverse=True)
    foreground = ndimage.binary_dilation(chroma > CHROMA_SEED, _EIGHT, iterations=2)
    return Reading(read_background(rgb.mean(axis=2), ~foreground), objects)


ATTRIBUTES = ("colour", "shape", "size", "position")


def _agreement(found: ObjectReading | None, spec: ObjectSpec) -> dict[str, bool]:
    return {a: found is not None and getattr(found, a) == getattr(spec, a) for a in ATTRIBUTES}


def _distance(found: ObjectReading | None, spec: ObjectSpec) -> float:
    if found is None:
        return 1.0
    return float(np.hypot(found.centre[0] - spec.centre[0], found.centre[1] - spec.centre[1]))


def _match(reading: Reading, specs: list[ObjectSpec]) -> list[ObjectReading | None]:
    """The reading objects (None where missing) that best explain `specs`, one each: most agreeing
    attributes first, then the smallest centre distance."""
    candidates: list[ObjectReading | None] = list(reading.objects[:6])
    candidates += [None] * max(0, len(specs) - len(candidates))
    best, best_key = None, None
    for chosen in itertools.permutations(range(len(candidates)), len(specs)):
        pairs = [(candidates[i], spec) for i, spec in zip(chosen, specs)]
        agree = sum(sum(_agreement(f, s).values()) for f, s in pairs)
        key = (-agree, sum(_distance(f, s) for f, s in pairs))
        if best_key is None or key < best_key:
            best, best_key = [f for f, _ in pairs], key
    return best or []


def judge_object(reading: Reading, spec: ObjectSpec) -> dict[str, bool]:
    """Whether the reading object that best matches `spec` has each of its
    attributes: {"found", "colour", "shape", "size", "position"}."""
    (found,) = _match(reading, [spec])
    return {"found": found is not None, **_agreement(found, spec)}


def judge(reading: Reading, scene: Scene) -> dict[str, bool]:
    """Per-attribute correctness of a reading against the `Scene` it should show.

    Objects are matched one-to-one (best agreement, then nearest); an attribute is correct when
    every object of the scene has it. Keys: "colour", "shape", "size", "position" (all objects),
    "background", "count" (as many objects read as the scene has).
    """
    matched = _match(reading, list(scene.objects))
    result = {a: True for a in ATTRIBUTES}
    for found, spec in zip(matched, scene.objects):
        for attribute, ok in _agreement(found, spec).items():
            result[attribute] &= ok
    result["background"] = reading.background == scene.background
    result["count"] = len(reading.objects) == len(scene.objects)
    return result
