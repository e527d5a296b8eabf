"""Progressive text-guided extrapolation with pixel Blended Diffusion (a paper application).

`python edit.py method=blended method.extrapolate=right:2 image=IMG target_prompt=T`.

The image (size L along the growing axis) is extended in quarter-image shifts, q = L // 4:

    1. shift: the window is the last L - q pixels of the canvas followed by a new strip of q
       pixels (the canvas's edge replicated, the starting colours); the strip is the mask.
    2. edit the window with Blended Diffusion (the editor's own settings, K candidates ranked by
       CLIP, the best kept); its strip is appended to the canvas. Steps 1-2 run `shifts` times.
    3. final pass (`extrapolate_final` > 0): each new strip is re-noised to that fraction of the
       chain and denoised again in a window centred on it, with context on both sides (the later
       strips did not exist when it was first made), so the seams between strips blend.

Every pixel outside the strip being edited is pasted back exactly, so the input's own pixels are
kept bit for bit (unless `dilate` grows a strip's mask into them). The output is L + shifts * q
along the axis. Strip j's candidates use seeds seed + j K .. seed + j K + K - 1; the final
pass continues the count.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import Tensor

from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import LoadedImage
from editing.io.outputs import EditResult

log = logging.getLogger(__name__)

__all__ = ["DIRECTIONS", "extrapolate", "parse_extrapolate"]

# direction: (the dim of [1, 3, H, W] that grows, whether it grows at its end)
DIRECTIONS = {"right": (3, True), "left": (3, False), "down": (2, True), "up": (2, False)}
KEY = "method.extrapolate"


def parse_extrapolate(value) -> str:
    """ "none" or "<direction>:<shifts>" (shifts 1..64), normalised; else a one-line error."""
    text = str(value).strip().lower()
    if text in ("none", "", "null", "false"):
        return "none"
    direction, _, count = text.partition(":")
    count = count or "1"
    if direction not in DIRECTIONS or not count.isdigit() or not 1 <= int(count) <= 64:
        raise UserInputError(
            f"{KEY}={value!r}: give none or <{'|'.join(DIRECTIONS)}>:<shifts>, e.g. right:2 "
            f"(1 to 64 quarter-image shifts)"
        )
    return f"{direction}:{int(count)}"


def _place(length: int, dim: int, start: int, size: int, like: Tensor) -> Tensor:
    """A {0, 1} mask [1, 1, ...] shaped like `like` along `dim` with length `length`, 1 on
    [start, start + size)."""
    shape = [1, 1, *like.shape[2:]]
    shape[dim] = length
    mask = torch.zeros(shape)
    mask.narrow(dim, start, size).fill_(1.0)
    return mask


def _edit_window(editor, model, window: Tensor, mask: Tensor, prompt: str, seed: int):
    """The best result [1, 3, ...] of one blended edit of `window` inside `mask`, and its score."""
    image = LoadedImage(window, sha256="", path="<extrapolation window>", original_size=(0, 0))
    best = editor(model, Inputs(image=image, mask=mask, target_prompt=prompt, seed=seed))[0]
    return best.image[None], best.score


def _shift_window(canvas: Tensor, dim: int, at_end: bool, length: int, q: int) -> Tensor:
    """The window of step 1: L - q pixels of context at the growing side plus q new pixels (the
    context's edge replicated)."""
    keep = length - q
    if at_end:
        context = canvas.narrow(dim, canvas.shape[dim] - keep, keep)
        edge = context.narrow(dim, keep - 1, 1)
    else:
        context = canvas.narrow(dim, 0, keep)
        edge = context.narrow(dim, 0, 1)
    pad = edge.expand_as(context.narrow(dim, 0, q))
    return torch.cat([context, pad] if at_end else [pad, context], dim)


def _final_pass(editor, model, canvas, dim, at_end, length, q, shifts, prompt, seed):
    """Step 3: (canvas with every strip denoised again from a low level, the strips' scores)."""
    k = max(1, round(editor.extrapolate_final * editor.num_timesteps))
    final = dataclasses.replace(editor, skip_timesteps=editor.num_timesteps - k)
    final._clip = editor._clip
    total, scores = canvas.shape[dim], []
    for j in range(shifts):
        at = length + j * q if at_end else total - length - (j + 1) * q
        start = min(max(0, at + q // 2 - length // 2), total - length)
        window = canvas.narrow(dim, start, length)
        mask = _place(length, dim, at - start, q, canvas)
        result, score = _edit_window(final, model, window, mask, prompt, seed)
        canvas = canvas.clone()
        canvas.narrow(dim, at, q).copy_(result.narrow(dim, at - start, q))
        seed, scores = seed + editor.num_candidates, [*scores, score]
    return canvas, scores


def extrapolate(editor, model, inputs: Inputs) -> list[EditResult]:
    """The extrapolated image of `editor.extrapolate` ("right:2", ...), as one `EditResult`."""
    if inputs.image is None:
        raise UserInputError(f"{KEY} needs image=PATH (the image to extend)")
    if inputs.mask is not None:
        raise UserInputError(f"{KEY} makes its own masks (the new strips): drop mask=")
    if editor.preset != "none" or editor.invert_mask:
        raise UserInputError(f"{KEY} edits the new strips: use it with preset=none, no invert_mask")
    direction, shifts = editor.extrapolate.split(":")
    shifts = int(shifts)
    dim, at_end = DIRECTIONS[direction]
    x = inputs.image.pixels.float().cpu()
    length = x.shape[dim]
    q = length // 4
    if q < 1:
        raise UserInputError(f"{KEY}: the image is too small ({length} px) for quarter shifts")
    # The inner editor: the same settings without extrapolation, one CLIP shared.
    step = dataclasses.replace(editor, extrapolate="none")
    step._clip = editor._clip
    prompt, seed, scores = inputs.target_prompt, int(inputs.seed), []
    canvas = x
    # 1-2. Shift by a quarter, edit the new strip, add it to the canvas.
    mask = _place(length, dim, length - q if at_end else 0, q, x)
    for _ in range(shifts):
        window = _shift_window(canvas, dim, at_end, length, q)
        result, score = _edit_window(step, model, window, mask, prompt, seed)
        strip = result.narrow(dim, length - q if at_end else 0, q).to(canvas)
        canvas = torch.cat([canvas, strip] if at_end else [strip, canvas], dim)
        seed, scores = seed + editor.num_candidates, [*scores, score]
    # 3. The final pass: each strip again, from a low noise level, context on both sides.
    final_scores = []
    if editor.extrapolate_final > 0:
        canvas, final_scores = _final_pass(
            step, model, canvas, dim, at_end, length, q, shifts, prompt, seed
        )
    editor._clip = step._clip
    log.info("extrapolated %s: %s -> %s", editor.extrapolate, tuple(x.shape), tuple(canvas.shape))
    params = {
        "method": editor.name,
        "prompt": prompt,
        "extrapolate": editor.extrapolate,
        "extrapolate_final": editor.extrapolate_final,
        "num_timesteps": editor.num_timesteps,
        "skip_timesteps": editor.skip_timesteps,
        "seed": int(inputs.seed),
        "strip_scores": scores,
        "final_scores": final_scores,
    }
    label = f"extrapolate={editor.extrapolate} seed={inputs.seed}"
    return [EditResult(canvas[0].clamp(-1, 1), label, params, None)]
