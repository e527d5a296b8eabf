"""Labelled image grids (edit results, comparisons, training previews).

Each image is scaled to fit a square cell (aspect ratio kept, centred) and its label written below it, wrapped at word boundaries
(a word wider than a cell is broken) so that no label is cut off: the label band is as tall as the
longest wrapped label. `input_tile` is the stand-in for an input image that is not known.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

__all__ = ["LINE_HEIGHT", "input_tile", "make_grid", "wrap_label"]

LINE_HEIGHT = 12  # pixels per label line (the default 10 px font plus spacing)
PADDING = 2


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def wrap_label(text: str, width: float, font=None) -> list[str]:
    """`text` as lines no wider than `width` pixels in `font` (words kept whole when they fit)."""
    font = font or _font()
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def fits(s: str) -> bool:
        return draw.textlength(s, font=font) <= width

    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            while not fits(word):  # a word wider than the cell: break it
                cut = max([1] + [k for k in range(1, len(word)) if fits(word[:k])])
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:cut])
                word = word[cut:]
            if not word:
                continue
            candidate = f"{line} {word}" if line else word
            if fits(candidate):
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def input_tile(size: int = 32) -> Image.Image:
    """A grey, crossed-out square standing in for an input image that was not given."""
    tile = Image.new("RGB", (size, size), (200, 200, 200))
    draw = ImageDraw.Draw(tile)
    draw.line((0, 0, size - 1, size - 1), fill=(120, 120, 120))
    draw.line((0, size - 1, size - 1, 0), fill=(120, 120, 120))
    return tile


def _fit(img: Image.Image, cell: int) -> tuple[Image.Image, tuple[int, int]]:
    """`img` scaled to fit a `cell` square, aspect ratio kept (nearest when enlarging), and its
    offset in the cell (centred; a non-square image leaves white bars)."""
    scale = cell / max(img.width, img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    small = max(img.width, img.height) < cell
    resample = Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS
    return img.resize(size, resample=resample), ((cell - size[0]) // 2, (cell - size[1]) // 2)


def make_grid(
    images: list[Image.Image], labels: list[str], columns: int = 8, cell: int = 160
) -> Image.Image:
    """Labelled grid: each image fit into `cell` px (nearest for small images), its label wrapped
    to the cell width below it; rows of `columns` cells."""
    font = _font()
    wrapped = [wrap_label(label, cell - 2 * PADDING, font) for label in labels]
    lines = max((len(w) for w in wrapped), default=0)
    label_h = max(1, lines) * LINE_HEIGHT + PADDING
    cols = max(1, min(columns, len(images)))
    rows = (len(images) + cols - 1) // cols
    grid = Image.new("RGB", (cols * cell, rows * (cell + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for k, (img, label_lines) in enumerate(zip(images, wrapped)):
        tile, (dx, dy) = _fit(img.convert("RGB"), cell)
        x, y = (k % cols) * cell, (k // cols) * (cell + label_h)
        grid.paste(tile, (x + dx, y + dy))
        for i, line in enumerate(label_lines):
            draw.text(
                (x + PADDING, y + cell + 1 + i * LINE_HEIGHT), line, fill=(0, 0, 0), font=font
            )
    return grid
