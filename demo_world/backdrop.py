"""Reading the background of a shapes-world image from its gray, object-free pixels.

Four numbers, each measuring one background pattern, in gray levels:
- noise: robust spread of the differences between horizontal neighbours, over sqrt(2) (pixel
  noise; the gradient and the stripes are constant along rows and a smooth texture barely moves);
- stripes: amplitude of the row means at the stripe frequency (any phase), after removing a linear
  trend, scaled so a square wave of amplitude A reads about A;
- trend: half the top-to-bottom drop of the row means (linear fit);
- level: median gray.
The decision takes the patterns in that order, each against a threshold between its absence (about
2 levels under the "real-looking" render style, 0 on clean renders) and its presence (noise 15-30,
stripes 26-33, trend about 72 with blur and noise), and names a plain background by its nearest
level.
"""

from __future__ import annotations

import numpy as np

from demo_world.vocabulary import BACKGROUNDS, STRIPE_PERIOD

# Thresholds per pattern, in gray levels: noise loses most to blur, hence the lower bar.
THRESHOLDS: dict[str, float] = {"noise": 7.0, "stripes": 13.0, "trend": 36.0}


def _by_pattern(pattern: str) -> str:
    return next(name for name, b in BACKGROUNDS.items() if b.pattern == pattern)


def background_features(gray: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """Pattern measures of a background.

    Args:
        gray: float [H, W] gray levels in [0, 255].
        valid: bool [H, W], the background pixels to use (objects and their rims excluded).

    Returns:
        {"noise", "stripes", "trend", "level"} in gray levels.
    """
    height = gray.shape[0]
    if valid.sum() < 8:
        valid = np.ones_like(valid)
    counts = valid.sum(axis=1)
    rows = np.nonzero(counts >= 2)[0]
    means = (gray * valid).sum(axis=1)[rows] / counts[rows]
    pairs = valid[:, 1:] & valid[:, :-1]
    differences = (gray[:, 1:] - gray[:, :-1])[pairs]
    noise = 1.4826 * float(np.median(np.abs(differences))) / np.sqrt(2) if pairs.any() else 0.0
    y = (rows + 0.5) / height
    frequency = 2 * np.pi / STRIPE_PERIOD
    basis = np.stack([np.ones_like(y), y, np.cos(frequency * y), np.sin(frequency * y)], axis=1)
    coefficients = np.linalg.lstsq(basis, means, rcond=None)[0] if rows.size >= 4 else np.zeros(4)
    return {
        "noise": noise,
        "stripes": float(np.hypot(coefficients[2], coefficients[3]) * np.pi / 4),
        "trend": float(-coefficients[1] / 2),
        "level": float(np.median(gray[valid])),
    }


def classify_background(features: dict[str, float]) -> str:
    """Background name from `background_features`."""
    for feature, pattern in (("noise", "noise"), ("stripes", "stripes"), ("trend", "gradient")):
        if features[feature] > THRESHOLDS[feature]:
            return _by_pattern(pattern)
    plain = [name for name, b in BACKGROUNDS.items() if b.pattern == "plain"]
    return min(plain, key=lambda name: abs(features["level"] - BACKGROUNDS[name].level))


def read_background(gray: np.ndarray, valid: np.ndarray) -> str:
    """Background name of gray levels float [H, W], reading only the bool [H, W] `valid` pixels."""
    return classify_background(background_features(gray, valid))
