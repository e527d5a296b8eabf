"""Scenes of the shapes world: what is where, how to sample one, and its caption.

A `Scene` is one or two `ObjectSpec`s on a named background. Captions are built from the closed
vocabulary only, so `parse_caption(caption(scene))` gives the scene back (jitter aside).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from demo_world.vocabulary import (
    BACKGROUNDS,
    CELL,
    COLOURS,
    FOOTPRINT,
    GRID_CENTRES,
    POSITION_PHRASES,
    POSITIONS,
    SHAPES,
    SIZES,
)


def max_offset(size: str) -> float:
    """Largest jitter (per axis, in `CELL` units) that keeps an object of `size` in its footprint."""
    return (FOOTPRINT - SIZES[size]) / 2 / CELL


def far_apart(position_a: str, position_b: str) -> bool:
    """True when two grid places are two steps apart along x or y, so objects there never overlap."""
    (ca, ra), (cb, rb) = POSITIONS[position_a], POSITIONS[position_b]
    return max(abs(ca - cb), abs(ra - rb)) >= 2


def _check(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(allowed)}")


@dataclass(frozen=True)
class ObjectSpec:
    """One object: vocabulary names plus a small jitter.

    Attributes:
        shape, colour, size, position: names from `demo_world.vocabulary`.
        offset: (dx, dy) jitter of the centre in `CELL` units, each within +-`max_offset(size)`.
    """

    shape: str
    colour: str
    size: str
    position: str
    offset: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        _check("shape", self.shape, SHAPES)
        _check("colour", self.colour, COLOURS)
        _check("size", self.size, SIZES)
        _check("position", self.position, POSITIONS)
        limit = max_offset(self.size) + 1e-9
        if len(self.offset) != 2 or max(abs(self.offset[0]), abs(self.offset[1])) > limit:
            raise ValueError(
                f"offset {self.offset} of a {self.size} object exceeds +-{limit:.3f} cells; "
                "use clamp_offset() or a smaller jitter"
            )

    @property
    def centre(self) -> tuple[float, float]:
        """(x, y) of the bounding-box centre, as fractions of the image side."""
        column, row = POSITIONS[self.position]
        return (
            GRID_CENTRES[column] + self.offset[0] * CELL,
            GRID_CENTRES[row] + self.offset[1] * CELL,
        )

    @property
    def extent(self) -> float:
        """Side of the object's bounding box, as a fraction of the image side."""
        return SIZES[self.size]

    def phrase(self) -> str:
        """Caption phrase, e.g. "a large red circle at the top left"."""
        return f"a {self.size} {self.colour} {self.shape} {POSITION_PHRASES[self.position]}"


def clamp_offset(offset: tuple[float, float], size: str) -> tuple[float, float]:
    """`offset` clipped to the jitter range allowed for `size`."""
    limit = max_offset(size)
    return (float(np.clip(offset[0], -limit, limit)), float(np.clip(offset[1], -limit, limit)))


@dataclass(frozen=True)
class Scene:
    """One or two objects (on far-apart grid places) on a named background."""

    objects: tuple[ObjectSpec, ...]
    background: str

    def __post_init__(self) -> None:
        _check("background", self.background, BACKGROUNDS)
        if not self.objects:
            raise ValueError("a scene needs at least one object")
        for i, a in enumerate(self.objects):
            for b in self.objects[i + 1 :]:
                if not far_apart(a.position, b.position):
                    raise ValueError(
                        f"objects {a.position!r} and {b.position!r} are too close; "
                        "two objects must be two grid steps apart"
                    )


def random_offset(rng: np.random.Generator, size: str) -> tuple[float, float]:
    """Uniform jitter within the range allowed for `size` (two draws from `rng`)."""
    limit = max_offset(size)
    dx, dy = rng.uniform(-limit, limit, size=2)
    return (float(dx), float(dy))


def sample_object(rng: np.random.Generator, position: str) -> ObjectSpec:
    """A uniformly random object (shape, colour, size, jitter) at `position`."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    size = list(SIZES)[rng.integers(len(SIZES))]
    return ObjectSpec(shape, colour, size, position, random_offset(rng, size))


FAR_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (a, b) for i, a in enumerate(POSITIONS) for b in list(POSITIONS)[i + 1 :] if far_apart(a, b)
)


def sample_scene(
    rng: np.random.Generator, max_objects: int = 2, two_object_prob: float = 0.3
) -> Scene:
    """A random scene: one object, or two on a random far-apart pair of places.

    Args:
        rng: the only source of randomness (same generator state -> same scene).
        max_objects: 1 or 2.
        two_object_prob: probability of a two-object scene when `max_objects` is 2.
    """
    if max_objects not in (1, 2):
        raise ValueError(f"max_objects must be 1 or 2, got {max_objects}")
    two = max_objects == 2 and rng.random() < two_object_prob
    if two:
        pair = FAR_PAIRS[rng.integers(len(FAR_PAIRS))]
        places = list(pair) if rng.random() < 0.5 else [pair[1], pair[0]]
    else:
        places = [list(POSITIONS)[rng.integers(len(POSITIONS))]]
    objects = tuple(sample_object(rng, place) for place in places)
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    return Scene(objects, background)


def caption(scene: Scene) -> str:
    """E.g. "a small blue star on the left and a large yellow square at the bottom right on a
    white background"."""
    body = " and ".join(obj.phrase() for obj in scene.objects)
    return f"{body} {BACKGROUNDS[scene.background].phrase}"


_PLACE_BY_PHRASE = {phrase: name for name, phrase in POSITION_PHRASES.items()}


def _parse_object(text: str, caption_text: str) -> ObjectSpec:
    words = text.split()
    if len(words) < 5 or words[0] != "a":
        raise ValueError(f"cannot parse object {text!r} in caption {caption_text!r}")
    size, colour, shape, place = words[1], words[2], words[3], " ".join(words[4:])
    if place not in _PLACE_BY_PHRASE:
        raise ValueError(f"unknown position phrase {place!r} in caption {caption_text!r}")
    return ObjectSpec(shape, colour, size, _PLACE_BY_PHRASE[place])


def parse_caption(text: str) -> Scene:
    """The scene a caption describes (zero jitter). Inverse of `caption` on the closed vocabulary.

    Raises:
        ValueError: naming the part of `text` that is not in the world's vocabulary.
    """
    normal = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".")
    for name, background in BACKGROUNDS.items():
        suffix = " " + background.phrase
        if normal.endswith(suffix):
            body = normal[: -len(suffix)]
            objects = tuple(_parse_object(part, text) for part in body.split(" and "))
            return Scene(objects, name)
    raise ValueError(f"caption {text!r} does not end with a known background phrase")
