"""Shape outlines and their anti-aliased pixel coverage.

Each shape lives in a unit box [-1, 1] x [-1, 1] (x right, y down) whose centre is the centre of
its bounding box. `coverage` places a shape in an image (centre and box side as fractions of the
image side), samples a supersampled grid inside its bounding box and box-filters it down, which is
what the renderer draws with and what the oracle fits templates with.
"""

from __future__ import annotations

import numpy as np

SQUARE_HALF_SIDE = 0.9
CROSS_HALF_WIDTH = 0.34
STAR_INNER_RATIO = 0.48


def _star() -> np.ndarray:
    angles = np.deg2rad(-90.0 + 36.0 * np.arange(10))
    radius = np.where(np.arange(10) % 2 == 0, 1.0, STAR_INNER_RATIO)
    points = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    low, high = points.min(axis=0), points.max(axis=0)
    scale = 2.0 / (high - low).max()
    return (points - (low + high) / 2) * scale


def _cross() -> np.ndarray:
    w = CROSS_HALF_WIDTH
    return np.array(
        [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ],
        dtype=np.float64,
    )


_S = SQUARE_HALF_SIDE
POLYGONS: dict[str, np.ndarray] = {
    "square": np.array([(-_S, -_S), (_S, -_S), (_S, _S), (-_S, _S)], dtype=np.float64),
    "triangle": np.array([(0.0, -0.95), (1.0, 0.95), (-1.0, 0.95)], dtype=np.float64),
    "star": _star(),
    "cross": _cross(),
}


def _edges(vertices: np.ndarray) -> np.ndarray:
    """Non-horizontal edges of a closed polygon as rows (x1, y1, x2, y2)."""
    edges = np.concatenate([vertices, np.roll(vertices, -1, axis=0)], axis=1)
    return edges[edges[:, 1] != edges[:, 3]]


_EDGES = {shape: _edges(vertices) for shape, vertices in POLYGONS.items()}


def inside(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean array: which unit-box points (x, y) lie inside `shape` (broadcast shape of x, y)."""
    if shape == "circle":
        return x * x + y * y <= 1.0
    if shape not in _EDGES:
        raise ValueError(f"unknown shape {shape!r}; expected circle or one of {sorted(POLYGONS)}")
    result = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    for x1, y1, x2, y2 in _EDGES[shape]:  # even-odd rule: count crossings of a ray to the left
        crosses = (y1 > y) != (y2 > y)
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        result ^= crosses & (x < x_cross)
    return result


def coverage(
    shape: str,
    centre: tuple[float, float],
    extent: float | tuple[float, float],
    resolution: int,
    supersample: int | None = None,
) -> np.ndarray:
    """Fraction of each pixel covered by a shape.

    Args:
        shape: a shape name.
        centre: (x, y) of the bounding-box centre, fractions of the image side.
        extent: side of the bounding box (or (width, height)), fractions of the image side.
        resolution: image side in pixels.
        supersample: samples per pixel side; default max(2, 256 // resolution).

    Returns:
        float32 [resolution, resolution] in [0, 1]; zero outside the shape's bounding box.
    """
    ss = supersample or max(2, 256 // resolution)
    ex, ey = (extent, extent) if np.isscalar(extent) else extent
    cx, cy = centre[0] * resolution, centre[1] * resolution
    hx, hy = ex * resolution / 2, ey * resolution / 2
    out = np.zeros((resolution, resolution), dtype=np.float32)
    x0, x1 = max(0, int(np.floor(cx - hx))), min(resolution, int(np.ceil(cx + hx)))
    y0, y1 = max(0, int(np.floor(cy - hy))), min(resolution, int(np.ceil(cy + hy)))
    if x1 <= x0 or y1 <= y0 or hx <= 0 or hy <= 0:
        return out
    offsets = (np.arange(ss) + 0.5) / ss
    xs = ((np.arange(x0, x1)[:, None] + offsets).ravel() - cx) / hx
    ys = ((np.arange(y0, y1)[:, None] + offsets).ravel() - cy) / hy
    hit = inside(shape, xs[None, :], ys[:, None]).astype(np.float32)
    out[y0:y1, x0:x1] = hit.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
    return out
