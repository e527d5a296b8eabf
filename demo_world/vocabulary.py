"""The closed vocabulary of the shapes world: shapes, colours, sizes, positions and backgrounds.

Every caption of the world is built from these constants (see `demo_world.scene.caption`), and
the demo model's tokenizer is built from `WORDS`. Geometry is given in fractions of the image side
so that the same scene renders at any resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")

# Saturated colours 60 degrees apart in hue (0, 60, 120, 180, 230, 300), chroma (max - min) >= 140,
# so that the oracle separates them by hue with a wide margin. name -> RGB uint8 values.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "yellow": (220, 210, 30),
    "green": (40, 180, 40),
    "cyan": (30, 195, 195),
    "blue": (40, 70, 220),
    "magenta": (210, 40, 210),
}

# Object extent (side of the shape's bounding box) as a fraction of the image side: 10.2 px and
# 14.4 px at 32x32.
SIZES: dict[str, float] = {"small": 0.32, "large": 0.45}

# Centres of the 3x3 grid, as fractions of the image side (x for columns, y for rows). Neighbouring
# centres are `CELL` apart; jitter offsets are expressed in units of `CELL`.
GRID_CENTRES: tuple[float, float, float] = (0.25, 0.5, 0.75)
CELL: float = 0.25

# Every object, jitter included, lies inside a FOOTPRINT x FOOTPRINT box centred on its cell: the box
# stays inside the image (0.64 px margin at 32x32) and two boxes whose cells are two steps apart
# never overlap (at least 1.28 px apart at 32x32).
FOOTPRINT: float = 0.46

# name -> (column, row) on the 3x3 grid.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "center": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}

POSITION_PHRASES: dict[str, str] = {
    "top left": "at the top left",
    "top": "at the top",
    "top right": "at the top right",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "at the bottom left",
    "bottom": "at the bottom",
    "bottom right": "at the bottom right",
}


@dataclass(frozen=True)
class Background:
    """A low-saturation (gray) background.

    Attributes:
        phrase: the caption phrase, e.g. "on a gray background".
        pattern: "plain", "gradient" (light at the top, dark at the bottom), "stripes" (horizontal
            bands, `STRIPE_PERIOD` of the image side per light+dark pair) or "noise" (gray pixel noise).
        level: mean gray level in [0, 255].
        amplitude: half the top-to-bottom difference (gradient), half the band difference (stripes)
            or the standard deviation of the noise, in gray levels; 0 for plain.
    """

    phrase: str
    pattern: str
    level: int
    amplitude: int = 0


BACKGROUNDS: dict[str, Background] = {
    "white": Background("on a white background", "plain", 235),
    "gray": Background("on a gray background", "plain", 128),
    "dark gray": Background("on a dark gray background", "plain", 64),
    "black": Background("on a black background", "plain", 16),
    "gradient": Background("on a gradient background", "gradient", 128, 72),
    "striped": Background("on a striped background", "stripes", 128, 30),
    "noisy": Background("on a noisy background", "noise", 128, 28),
}

STRIPE_PERIOD: float = 1 / 5


def _caption_words() -> tuple[str, ...]:
    phrases = ["a and", *SIZES, *COLOURS, *SHAPES, *POSITION_PHRASES.values()]
    phrases += [b.phrase for b in BACKGROUNDS.values()]
    return tuple(sorted({word for phrase in phrases for word in phrase.split()}))


# Every word that a caption of this world can contain (sorted, unique).
WORDS: tuple[str, ...] = _caption_words()
