"""Fitting shape templates to a soft object mask.

A template is a shape rendered by `demo_world.geometry.coverage` with the centroid and second
moments of the mask (so its position, aspect ratio and scale come from the data); the soft IoU of
mask and template scores the shape. Blur (of a render style or of a generative model) widens a
mask's moments by its variance, so each shape is also tried blurred by each of `BLURS`, with the
moments corrected for that blur, and its best score is kept.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from demo_world.geometry import coverage, inside
from demo_world.vocabulary import SHAPES

BLURS = (0.0, 0.6, 1.2)  # blur sigmas (pixels) the fit tries


@functools.cache
def _template_moments(shape: str, samples: int = 600) -> tuple[float, float, float, float]:
    """Centroid (cx, cy) and standard deviations (sx, sy) of a shape in unit-box coordinates."""
    axis = (np.arange(samples) + 0.5) / samples * 2 - 1
    hit = inside(shape, axis[None, :], axis[:, None]).astype(np.float64)
    px, py = hit.sum(axis=0) / hit.sum(), hit.sum(axis=1) / hit.sum()
    cx, cy = float(px @ axis), float(py @ axis)
    return cx, cy, float(np.sqrt(px @ (axis - cx) ** 2)), float(np.sqrt(py @ (axis - cy) ** 2))


def _moments(alpha: np.ndarray) -> tuple[float, float, float, float]:
    """Centroid and standard deviations (pixels) of a soft mask, in-pixel variance included."""
    total = alpha.sum()
    ys, xs = np.indices(alpha.shape) + 0.5
    cx, cy = (alpha * xs).sum() / total, (alpha * ys).sum() / total
    vx = (alpha * (xs - cx) ** 2).sum() / total + 1 / 12
    vy = (alpha * (ys - cy) ** 2).sum() / total + 1 / 12
    return float(cx), float(cy), float(np.sqrt(vx)), float(np.sqrt(vy))


def fit_shape(alpha: np.ndarray) -> tuple[str, tuple[float, float], float, dict[str, float]]:
    """Best-fitting shape of a soft mask float [H, W] in [0, 1] (square image).

    Returns:
        (shape, centre (x, y) as fractions, extent as a fraction, best soft IoU per shape).
    """
    resolution = alpha.shape[0]
    cx, cy, sx, sy = _moments(alpha)
    best, scores, fits = SHAPES[0], {}, {}
    for shape in SHAPES:
        tcx, tcy, tsx, tsy = _template_moments(shape)
        scores[shape] = -1.0
        for blur in BLURS:
            half_x = np.sqrt(max(sx * sx - blur * blur, 0.25 * sx * sx)) / tsx
            half_y = np.sqrt(max(sy * sy - blur * blur, 0.25 * sy * sy)) / tsy
            centre = ((cx - tcx * half_x) / resolution, (cy - tcy * half_y) / resolution)
            extent = (2 * half_x / resolution, 2 * half_y / resolution)
            template = coverage(shape, centre, extent, resolution, max(2, 128 // resolution))
            if blur > 0:
                template = ndimage.gaussian_filter(template, blur, mode="constant")
            iou = float(np.minimum(alpha, template).sum() / np.maximum(alpha, template).sum())
            if iou > scores[shape]:
                scores[shape] = iou
                fits[shape] = (centre, float(np.sqrt(extent[0] * extent[1])))
        if scores[shape] > scores[best]:
            best = shape
    return best, fits[best][0], fits[best][1], scores
