"""Deterministic edit cases on the shapes world, for measuring editing methods with the oracle.

Each case is a source scene, the target scene an ideal edit would produce (one attribute changed,
everything else - jitter and background noise included - kept), both prompts, both renders and the
mask of the region the edit may touch.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from demo_world.render import RenderStyle, object_masks, render
from demo_world.scene import (
    FAR_PAIRS,
    ObjectSpec,
    Scene,
    caption,
    clamp_offset,
    far_apart,
    sample_object,
)
from demo_world.vocabulary import (
    BACKGROUNDS,
    COLOURS,
    FOOTPRINT,
    GRID_CENTRES,
    POSITIONS,
    SHAPES,
    SIZES,
)

EDIT_TYPES: tuple[str, ...] = ("colour", "shape", "position", "size", "background", "add", "remove")


@dataclass(frozen=True, eq=False)
class EditCase:
    """One edit: source -> target.

    Attributes:
        case_id: e.g. "shape-007".
        edit_type: one of `EDIT_TYPES`.
        source_scene, target_scene: the scenes before and after the ideal edit.
        source_prompt, target_prompt: their captions.
        image: the source render, uint8 [H, W, 3].
        target_image: the target render (same jitter, background noise and style), uint8 [H, W, 3].
        mask: bool [H, W], where the edit may change pixels: the changed objects' pixels in source
            and target (the cell's footprint for "add", the background for "background"), dilated.
    """

    case_id: str
    edit_type: str
    source_scene: Scene
    target_scene: Scene
    source_prompt: str
    target_prompt: str
    image: np.ndarray
    target_image: np.ndarray
    mask: np.ndarray


def _other(rng: np.random.Generator, options, current: str) -> str:
    choices = [o for o in options if o != current]
    return choices[rng.integers(len(choices))]


def _background(rng: np.random.Generator) -> str:
    return list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]


def _single(rng: np.random.Generator, positions=tuple(POSITIONS)) -> Scene:
    position = positions[rng.integers(len(positions))]
    return Scene((sample_object(rng, position),), _background(rng))


def _scenes(edit_type: str, rng: np.random.Generator) -> tuple[Scene, Scene]:
    """A source scene and its edited target, for one edit type."""
    if edit_type == "remove":
        pair = FAR_PAIRS[rng.integers(len(FAR_PAIRS))]
        source = Scene(tuple(sample_object(rng, p) for p in pair), _background(rng))
        kept = source.objects[1 - rng.integers(2)]
        return source, Scene((kept,), source.background)
    if edit_type == "add":
        source = _single(rng, tuple(p for p in POSITIONS if p != "center"))
        free = [p for p in POSITIONS if far_apart(p, source.objects[0].position)]
        added = sample_object(rng, free[rng.integers(len(free))])
        return source, Scene((*source.objects, added), source.background)
    source = _single(rng)
    obj = source.objects[0]
    if edit_type == "background":
        return source, Scene(source.objects, _other(rng, BACKGROUNDS, source.background))
    if edit_type == "size":  # the largest size allows the least jitter: valid for both, kept
        obj = replace(obj, offset=clamp_offset(obj.offset, max(SIZES, key=SIZES.get)))
        source = Scene((obj,), source.background)
        edited = replace(obj, size=_other(rng, SIZES, obj.size))
    elif edit_type == "colour":
        edited = replace(obj, colour=_other(rng, COLOURS, obj.colour))
    elif edit_type == "shape":
        edited = replace(obj, shape=_other(rng, SHAPES, obj.shape))
    elif edit_type == "position":
        edited = replace(obj, position=_other(rng, POSITIONS, obj.position))
    else:
        raise ValueError(f"unknown edit type {edit_type!r}; expected one of {EDIT_TYPES}")
    return source, Scene((edited,), source.background)


def _footprint(obj: ObjectSpec, resolution: int) -> np.ndarray:
    """bool [H, W]: the FOOTPRINT box of an object's grid cell."""
    column, row = POSITIONS[obj.position]
    centres = (np.arange(resolution) + 0.5) / resolution
    inside_x = np.abs(centres - GRID_CENTRES[column]) <= FOOTPRINT / 2
    inside_y = np.abs(centres - GRID_CENTRES[row]) <= FOOTPRINT / 2
    return inside_y[:, None] & inside_x[None, :]


def edit_mask(edit_type: str, source: Scene, target: Scene, resolution: int) -> np.ndarray:
    """bool [H, W]: where an ideal edit of `source` into `target` changes pixels, dilated by
    about 1.5 px at 32x32 (scaled with the resolution)."""
    source_masks = object_masks(source, resolution)
    target_masks = object_masks(target, resolution)
    if edit_type == "add":
        region = _footprint(target.objects[-1], resolution)
    elif edit_type == "remove":
        kept = target.objects[0]
        region = next(m for o, m in zip(source.objects, source_masks) if o != kept)
    elif edit_type == "background":
        region = ~np.logical_or.reduce(source_masks)
    else:
        region = source_masks[0] | target_masks[0]
    iterations = max(1, round(1.5 * resolution / 32))
    return ndimage.binary_dilation(region, np.ones((3, 3), dtype=bool), iterations=iterations)


def make_suite(
    edit_type: str,
    n: int,
    seed: int = 0,
    resolution: int = 32,
    style: RenderStyle | None = None,
) -> list[EditCase]:
    """`n` deterministic edit cases of one type.

    Args:
        edit_type: "colour", "shape", "position", "size", "background" (one-object sources, one
            attribute changed), "add" (a second object on a free far-apart place, appended to the
            caption) or "remove" (two-object source; the target describes the remaining object).
        n: number of cases; case i depends only on (seed, edit_type, i).
        seed: suite seed.
        resolution: image side in pixels.
        style: optional off-distribution render style for both images.
    """
    if edit_type not in EDIT_TYPES:
        raise ValueError(f"unknown edit type {edit_type!r}; expected one of {EDIT_TYPES}")
    key = zlib.crc32(edit_type.encode())
    cases = []
    for i in range(n):
        source, target = _scenes(edit_type, np.random.default_rng([seed, key, i]))
        image_seed = [seed, key, i, 1]
        cases.append(
            EditCase(
                case_id=f"{edit_type}-{i:03d}",
                edit_type=edit_type,
                source_scene=source,
                target_scene=target,
                source_prompt=caption(source),
                target_prompt=caption(target),
                image=render(source, resolution, np.random.default_rng(image_seed), style),
                target_image=render(target, resolution, np.random.default_rng(image_seed), style),
                mask=edit_mask(edit_type, source, target, resolution),
            )
        )
    return cases
