"""PIE-Bench run-length masks: hand-checked decoding, the reference's quirks, round trips."""

from __future__ import annotations

import numpy as np
import pytest

from editing_app.evaluation.rle import RleMask, decode_rle, encode_rle


def test_decode_by_hand():
    # 3 x 4 image, row-major: pixels 1, 2 (row 0), 6 (row 1), 10, 11 (row 2; the run of 5 is
    # clipped at the last pixel as the reference does), and a run starting past the end is empty.
    mask = decode_rle([1, 2, 6, 1, 10, 5, 40, 3], shape=(3, 4))
    expected = np.array(
        [
            [0, 1, 1, 0],
            [0, 0, 1, 0],
            [0, 0, 1, 1],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(mask, expected)


def test_overlapping_and_unordered_runs_union():
    a = decode_rle([5, 3, 0, 2, 6, 4], shape=(2, 6))
    b = np.zeros(12, dtype=bool)
    b[[0, 1, 5, 6, 7, 8, 9]] = True
    np.testing.assert_array_equal(a.ravel(), b)


def test_border_marks_the_outermost_pixels_as_the_reference_does():
    mask = decode_rle([], shape=(4, 5), border=True)
    inner = np.zeros((4, 5), dtype=bool)
    inner[1:-1, 1:-1] = True
    np.testing.assert_array_equal(mask, ~inner)
    np.testing.assert_array_equal(RleMask((), border=True).decode((4, 5)), mask)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encode_decode_round_trip(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((9, 13)) < [0.1, 0.5, 0.9][seed]
    counts = encode_rle(mask)
    np.testing.assert_array_equal(decode_rle(counts, mask.shape), mask)
    starts, lengths = counts[0::2], counts[1::2]
    assert starts == sorted(starts) and all(n > 0 for n in lengths)
    assert len(counts) % 2 == 0


def test_encode_by_hand_and_edge_cases():
    mask = np.zeros((2, 4), dtype=bool)
    mask[0, 3] = mask[1, 0] = mask[1, 1] = True  # one run across the row boundary: 3..5
    assert encode_rle(mask) == [3, 3]
    assert encode_rle(np.zeros((2, 2), bool)) == []
    assert encode_rle(np.ones((2, 2), bool)) == [0, 4]


def test_malformed_counts_are_refused():
    with pytest.raises(ValueError, match="even number"):
        decode_rle([1, 2, 3], (4, 4))
    with pytest.raises(ValueError, match="non-negative"):
        decode_rle([-1, 2], (4, 4))
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        encode_rle(np.zeros(5, bool))
