"""PIE-Bench's run-length mask encoding: decode, encode, and a lazily decoded mask.

PIE-Bench (Ju et al. 2023) stores each case's edit mask in `mapping_file.json` as one flat list of
integers `[start_0, length_0, start_1, length_1, ...]`: pixel `start_k` and the `length_k - 1`
pixels after it, in row-major order over the H x W image (512 x 512 for every PIE-Bench image), are
inside the mask (the region to edit); every other pixel is outside. Runs may appear in any order
and overlap. The reference decoder (`mask_decode` of PIE-Bench's evaluation code) clips a run at
the image's end and then marks the 1-pixel image border as edited ("to avoid annotation errors in
boundary"); `border=True` reproduces that, `border=False` decodes exactly what the runs say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["RleMask", "decode_rle", "encode_rle"]


def _check_counts(counts: Sequence[int]) -> np.ndarray:
    values = np.asarray(list(counts))
    if values.size % 2:
        raise ValueError(
            f"an RLE mask needs an even number of integers [start, length, ...], got {values.size}"
        )
    if values.size and (
        not np.issubdtype(values.dtype, np.integer) or values.min() < 0  # bools are refused too
    ):
        raise ValueError("RLE starts and lengths must be non-negative integers")
    return values.astype(np.int64)


def decode_rle(
    counts: Sequence[int], shape: tuple[int, int] = (512, 512), border: bool = False
) -> np.ndarray:
    """Decode PIE-Bench RLE `[start, length, ...]` into a bool mask [H, W] (True = edit region).

    Args:
        counts: flat list of (start, length) pairs over the row-major flattened image.
        shape: (H, W) of the image the mask belongs to (PIE-Bench: (512, 512)).
        border: also mark the outermost rows and columns, as PIE-Bench's `mask_decode` does.

    Runs that reach past the last pixel are clipped there (as the reference does); a run starting
    past it is empty.
    """
    h, w = int(shape[0]), int(shape[1])
    flat = np.zeros(h * w, dtype=bool)
    values = _check_counts(counts)
    for start, length in values.reshape(-1, 2):
        flat[start : min(start + length, h * w)] = True
    mask = flat.reshape(h, w)
    if border:
        mask[0, :] = mask[-1, :] = True
        mask[:, 0] = mask[:, -1] = True
    return mask


def encode_rle(mask: np.ndarray) -> list[int]:
    """Encode a bool mask [H, W] as PIE-Bench RLE: the runs of True pixels in row-major order,
    `[start_0, length_0, start_1, length_1, ...]` with increasing starts (the shortest encoding).

    `decode_rle(encode_rle(m), m.shape)` gives `m` back.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a mask [H, W], got shape {mask.shape}")
    flat = mask.astype(bool).ravel().astype(np.int8)
    edges = np.diff(np.concatenate([[0], flat, [0]]))
    starts = np.flatnonzero(edges == 1)
    lengths = np.flatnonzero(edges == -1) - starts
    return [int(v) for pair in zip(starts, lengths) for v in pair]


@dataclass(frozen=True)
class RleMask:
    """An RLE mask decoded only when used, at the size of the image it belongs to.

    Attributes:
        counts: PIE-Bench RLE `[start, length, ...]`.
        border: mark the 1-pixel image border as edited (PIE-Bench's `mask_decode`).
    """

    counts: tuple[int, ...]
    border: bool = False

    def decode(self, shape: tuple[int, int]) -> np.ndarray:
        """bool [H, W] for an image of `shape` (H, W)."""
        return decode_rle(self.counts, shape, self.border)
