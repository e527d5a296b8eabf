"""Labelled grids: the input in the first cell, labels wrapped inside their cell, never cut off."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from editing.io.grid import LINE_HEIGHT, PADDING, make_grid, wrap_label
from editing.io.images import to_pil
from editing.io.outputs import EditResult, write_outputs

PROMPT = "a large magenta square at the top right on a gradient background, seen from above"


def _dark(region: Image.Image) -> bool:
    return bool((np.asarray(region.convert("L")) < 128).any())


def test_wrapped_lines_fit_the_width_and_keep_every_word():
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = wrap_label(PROMPT + " supercalifragilisticexpialidociousword", 60)
    assert len(lines) > 3
    assert all(draw.textlength(line) <= 60 for line in lines)
    assert "".join("".join(lines).split()) == "".join(PROMPT.split()) + (
        "supercalifragilisticexpialidociousword"
    )
    assert wrap_label("", 60) == [] and wrap_label("input", 60) == ["input"]


def test_long_labels_are_wrapped_inside_their_own_cell():
    cell = 80
    tiles = [Image.new("RGB", (32, 32), (255, 255, 255))] * 2
    grid = make_grid(tiles, [PROMPT, ""], cell=cell)
    lines = len(wrap_label(PROMPT, cell - 2 * PADDING))
    assert lines > 2
    assert grid.size == (2 * cell, cell + lines * LINE_HEIGHT + PADDING)
    last_line = (0, cell + (lines - 1) * LINE_HEIGHT, cell, grid.height)
    assert _dark(grid.crop(last_line))  # the last wrapped line is drawn, inside the image
    assert not _dark(grid.crop((cell, cell, 2 * cell, grid.height)))  # nothing spills over


def _result(value: float, label: str) -> EditResult:
    return EditResult(image=torch.full((3, 32, 32), value), label=label)


def test_grid_png_has_the_input_in_its_first_cell(tmp_path):
    g = torch.Generator().manual_seed(0)
    image = torch.rand((3, 32, 32), generator=g) * 2 - 1
    write_outputs(tmp_path, [_result(0.5, PROMPT), _result(-0.5, "b")], image, "{}\n")
    grid = Image.open(tmp_path / "grid.png").convert("RGB")
    expected = to_pil(image).resize((160, 160), Image.Resampling.NEAREST)
    assert np.array_equal(np.asarray(grid.crop((0, 0, 160, 160))), np.asarray(expected))
    assert grid.width == 3 * 160 and grid.height > 160 + 2 * LINE_HEIGHT  # the prompt wrapped


def test_grid_png_without_an_input_keeps_a_labelled_input_cell(tmp_path):
    write_outputs(tmp_path, [_result(1.0, "edit")], None, "{}\n")
    grid = Image.open(tmp_path / "grid.png").convert("RGB")
    assert grid.width == 2 * 160
    first = np.asarray(grid.crop((0, 0, 160, 160)))
    assert not (first == 255).all()  # a stand-in, not the white result
    assert _dark(grid.crop((0, 160, 160, grid.height)))  # its label


def test_a_wide_image_keeps_its_aspect_ratio_in_its_cell():
    wide = Image.new("RGB", (48, 32), (255, 0, 0))  # an extrapolated result: 1.5 : 1
    grid = make_grid([wide], ["wide"], cell=96)
    rgb = np.asarray(grid)
    # 96 x 64 of red, centred: white bars of 16 px above and below, none at the sides.
    assert (rgb[16:80, :, 0] == 255).all() and (rgb[16:80, :, 1] == 0).all()
    assert (rgb[:16, :] == 255).all() and (rgb[80:96, :] == 255).all()
