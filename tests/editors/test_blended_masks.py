"""Mask utilities for Blended (Latent) Diffusion: checks, invert, dilate, latent size, outpaint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from editing.errors import UserInputError
from editing.io.masks import (
    check_mask,
    dilate_mask,
    downsample_mask,
    invert_mask,
    main,
    outpaint_canvas,
    prepare_mask,
    shrinking_masks,
)


def _mask(size: int = 8, box=(2, 5, 3, 6)) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., box[0] : box[1], box[2] : box[3]] = 1
    return m


def test_missing_empty_and_full_masks_are_refused():
    with pytest.raises(UserInputError, match="needs mask=PATH"):
        check_mask(None)
    with pytest.raises(UserInputError, match="empty"):
        check_mask(torch.zeros(1, 1, 8, 8))
    with pytest.raises(UserInputError, match="whole image"):
        check_mask(torch.ones(1, 1, 8, 8))
    assert torch.equal(check_mask(_mask()), _mask())


def test_invert_and_dilate():
    m = _mask()
    assert torch.equal(invert_mask(m) + m, torch.ones_like(m))
    point = torch.zeros(1, 1, 7, 7)
    point[..., 3, 3] = 1
    grown = dilate_mask(point, 1)
    expected = torch.zeros_like(point)
    expected[..., 2:5, 2:5] = 1
    assert torch.equal(grown, expected)
    assert torch.equal(dilate_mask(point, 0), point)
    with pytest.raises(UserInputError):
        dilate_mask(point, -1)


def test_prepare_mask_inverts_before_dilating_and_rechecks():
    m = _mask()
    out = prepare_mask(m, invert=True, dilate=1)
    # Inverted, then the edited (outer) region grows by one pixel into the object.
    assert torch.equal(out, dilate_mask(1 - m, 1))
    with pytest.raises(UserInputError, match="dilated"):
        prepare_mask(m, invert=True, dilate=3)  # the kept object vanishes: full mask


def test_downsample_nearest_and_max():
    line = torch.zeros(1, 1, 16, 16)
    line[..., 5, :] = 1  # a 1-pixel line
    assert not downsample_mask(line, (4, 4), "nearest").any()  # row 5 is not a sampled row
    coarse = downsample_mask(line, (4, 4), "max")
    assert coarse[0, 0, 1].all() and coarse.sum() == 4
    block = _mask(16, (4, 12, 4, 12))
    assert torch.equal(
        downsample_mask(block, (4, 4), "nearest"), downsample_mask(block, (4, 4), "max")
    )
    with pytest.raises(UserInputError):
        downsample_mask(block, (4, 4), "area")


def test_shrinking_masks_go_from_dilated_to_the_true_mask():
    m = _mask(16, (6, 9, 6, 9))
    masks = shrinking_masks(m, num_steps=10, radius=3, until=0.5)
    assert len(masks) == 10
    assert torch.equal(masks[0], dilate_mask(m, 3))
    sizes = [int(x.sum()) for x in masks]
    assert sizes == sorted(sizes, reverse=True)
    assert all(torch.equal(x, m) for x in masks[5:])


def test_outpaint_canvas_and_cli(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)
    canvas, mask = outpaint_canvas(Image.fromarray(rgb), 3)
    assert canvas.size == (18, 16) and mask.size == (18, 16) and canvas.mode == "RGB"
    c, m = np.asarray(canvas), np.asarray(mask)
    assert np.array_equal(c[3:13, 3:15], rgb)
    assert (m[3:13, 3:15] == 0).all() and (m == 255).sum() == 18 * 16 - 10 * 12
    assert np.array_equal(c[0, 3:15], rgb[0])  # "edge" fill replicates the border
    canvas, mask = outpaint_canvas(Image.fromarray(rgb), (0, 0, 5, 0), fill="gray")
    assert canvas.size == (17, 10) and (np.asarray(canvas)[:, 12:] == 128).all()
    with pytest.raises(UserInputError):
        outpaint_canvas(Image.fromarray(rgb), 0)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    main(["outpaint", str(tmp_path / "in.png"), "--margin", "2", "--out", str(tmp_path / "o")])
    assert Image.open(tmp_path / "o" / "canvas.png").size == (16, 14)
    assert Image.open(tmp_path / "o" / "mask.png").size == (16, 14)
