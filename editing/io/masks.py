"""Edit masks for Blended (Latent) Diffusion: checks, inversion, dilation, latent size, outpainting.

A mask is a float tensor [1, 1, H, W] with values in {0, 1}; 1 marks the region to edit. Masks
are read by `editing.io.images.load_mask` (threshold rule: luminance above 50 % of full scale is 1;
an RGBA/LA mask with any transparency uses its alpha channel instead; the mask must have the
image's size, another size is refused) and then go through `prepare_mask` here.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from editing.errors import UserInputError

__all__ = [
    "check_mask",
    "dilate_mask",
    "downsample_mask",
    "full_size_region",
    "invert_mask",
    "outpaint_canvas",
    "prepare_mask",
    "shrinking_masks",
]


def check_mask(mask: Tensor | None, what: str = "mask") -> Tensor:
    """Refuse a missing, empty or full mask; return it as float32 [1, 1, H, W] in {0, 1}."""
    if mask is None:
        raise UserInputError(
            "this method needs mask=PATH: a black-and-white image of the input's size, white "
            "where the image should change"
        )
    if mask.ndim != 4 or mask.shape[:2] != (1, 1):
        raise ValueError(f"{what} must be [1, 1, H, W], got {tuple(mask.shape)}")
    mask = mask.float()
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{what} must hold only 0 and 1")
    if not bool(mask.any()):
        raise UserInputError(
            f"the {what} is empty (no pixel above the 50% threshold): nothing would be edited; "
            f"paint the region to edit white"
        )
    if bool(mask.all()):
        raise UserInputError(
            f"the {what} covers the whole image: nothing of the input would be kept; give a mask "
            f"with some black (kept) pixels, or generate from text instead"
        )
    return mask


def invert_mask(mask: Tensor) -> Tensor:
    """1 - mask: edit everything but the masked object (background replacement)."""
    return 1.0 - mask


def dilate_mask(mask: Tensor, pixels: int) -> Tensor:
    """Grow the mask by `pixels` in every direction (square structuring element, max-pooling)."""
    if pixels < 0:
        raise UserInputError(f"dilation must be >= 0 pixels, got {pixels}")
    if pixels == 0:
        return mask
    return F.max_pool2d(mask, kernel_size=2 * pixels + 1, stride=1, padding=pixels)


def prepare_mask(
    mask: Tensor | None, invert: bool = False, dilate: int = 0, what: str = "mask"
) -> Tensor:
    """The mask the sampler uses: checked, optionally inverted, then dilated, checked again.

    Order: invert first (so `dilate` always grows the *edited* region), then dilate.
    """
    mask = check_mask(mask, what)
    if invert:
        mask = invert_mask(mask)
    mask = dilate_mask(mask, int(dilate))
    label = (
        what + (" (inverted)" if invert else "") + (f" (dilated by {dilate} px)" if dilate else "")
    )
    return check_mask(mask, label)


def full_size_region(
    full_mask: Tensor | None, working_mask: Tensor | None, invert: bool, dilate: int
) -> Tensor | None:
    """The edited region at the photo's own size [1, 1, height, width]: the full-size mask
    inverted like the working one, dilated by `dilate` working pixels scaled to full size
    (None without a full-size mask)."""
    if full_mask is None or working_mask is None:
        return None
    scale = full_mask.shape[-2] / working_mask.shape[-2]
    region = invert_mask(full_mask) if invert else full_mask
    return dilate_mask(region, round(int(dilate) * scale))


def downsample_mask(mask: Tensor, size: tuple[int, int], mode: str = "nearest") -> Tensor:
    """A {0, 1} mask [B, 1, H, W] at `size` (h, w), e.g. the latent resolution.

    "nearest": the sample at each cell's nearest pixel (Blended Latent Diffusion's reference script,
    PIL NEAREST); thin strokes can vanish. "max": a cell is 1 if any of its pixels is (the latent
    mask covers the whole pixel mask; adaptive max-pooling).
    """
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    if mode == "nearest":
        return F.interpolate(mask, size=size, mode="nearest-exact")
    if mode == "max":
        return F.adaptive_max_pool2d(mask, size)
    raise UserInputError(f"mask_downsample must be 'nearest' or 'max', got {mode!r}")


def shrinking_masks(mask: Tensor, num_steps: int, radius: int, until: float = 0.5) -> list[Tensor]:
    """Progressive mask shrinking (Blended Latent Diffusion Sec. 4.2), one mask per step.

    Step i of `num_steps` uses the mask dilated by round(radius * (1 - i / n)) cells, n being the
    number of steps in the first `until` fraction of the run; later steps use `mask` itself. A thin
    mask that the latent resolution cannot hold gets a wide region early (when the coarse layout is
    decided) and the exact region at the end.
    """
    n = max(1, round(num_steps * until))
    out = []
    for i in range(num_steps):
        r = round(radius * (1 - i / n)) if i < n else 0
        out.append(dilate_mask(mask, max(0, r)))
    return out


def outpaint_canvas(
    image: Image.Image, margin: int | tuple[int, int, int, int], fill: str = "edge"
) -> tuple[Image.Image, Image.Image]:
    """Extend an image by a margin for text-guided extrapolation; returns (canvas, mask).

    Args:
        image: the input (any PIL mode; converted to RGB).
        margin: pixels added on every side, or (left, top, right, bottom).
        fill: how the new border starts before editing: "edge" (replicate the nearest pixel),
            "reflect" (mirror the image) or "gray" (mid gray). Blended Diffusion starts from the
            noised canvas, so the fill only sets the rough colours of the new area.
    Returns:
        canvas: RGB image of size (W + left + right, H + top + bottom).
        mask: L image of the canvas's size, white on the new border, black on the original.
    """
    from editing.io.images import to_rgb

    left, top, right, bottom = (margin,) * 4 if isinstance(margin, int) else tuple(margin)
    if min(left, top, right, bottom) < 0 or max(left, top, right, bottom) == 0:
        raise UserInputError(f"outpaint margin must be >= 0 and not all 0, got {margin}")
    rgb = np.asarray(to_rgb(image))
    pad = ((top, bottom), (left, right), (0, 0))
    if fill in ("edge", "reflect"):
        too_wide = max(top, bottom) >= rgb.shape[0] or max(left, right) >= rgb.shape[1]
        if fill == "reflect" and too_wide:
            fill = "symmetric"  # "reflect" cannot pad by more than the image's size minus one
        canvas = np.pad(rgb, pad, mode=fill)
    elif fill == "gray":
        canvas = np.pad(rgb, pad, mode="constant", constant_values=128)
    else:
        raise UserInputError(f"outpaint fill must be 'edge', 'reflect' or 'gray', got {fill!r}")
    mask = np.full(canvas.shape[:2], 255, dtype=np.uint8)
    mask[top : top + rgb.shape[0], left : left + rgb.shape[1]] = 0
    return Image.fromarray(canvas, "RGB"), Image.fromarray(mask, "L")


def main(argv: list[str] | None = None) -> None:
    """`python -m editing.io.masks outpaint IMG --margin 64 --out DIR`: write DIR/canvas.png + mask.png."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m editing.io.masks", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    op = sub.add_parser("outpaint", help="extend an image by a margin and write the border mask")
    op.add_argument("image")
    op.add_argument("--margin", type=int, nargs="+", required=True, help="N or L T R B pixels")
    op.add_argument("--fill", default="edge", choices=["edge", "reflect", "gray"])
    op.add_argument("--out", required=True, help="folder for canvas.png and mask.png")
    args = parser.parse_args(argv)
    margin = args.margin[0] if len(args.margin) == 1 else tuple(args.margin)
    if len(args.margin) not in (1, 4):
        parser.error("--margin takes 1 or 4 numbers")
    with Image.open(args.image) as img:
        canvas, mask = outpaint_canvas(img, margin, args.fill)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    canvas.save(out / "canvas.png")
    mask.save(out / "mask.png")
    print(f"wrote {out / 'canvas.png'} ({canvas.width}x{canvas.height}) and {out / 'mask.png'}")


if __name__ == "__main__":
    main()
