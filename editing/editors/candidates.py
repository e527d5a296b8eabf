"""What the masked methods share about their K candidates: ranking, the final pixel paste and the
CLIP they rank (and guide) with. Candidate k of a run with seed s uses seed s + k and draws its
noise by the project's one rule (`editing.diffusion.noise`)."""

from __future__ import annotations

import torch
from torch import Tensor

from editing.io.outputs import EditResult


def candidate_seeds(seed: int, num_candidates: int) -> list[int]:
    """[seed, seed + 1, ..., seed + K - 1]: candidate k's seed."""
    return [int(seed) + k for k in range(num_candidates)]


def paste_outside(x: Tensor, source: Tensor, mask: Tensor) -> Tensor:
    """x inside the mask (mask > 0.5), the source's own pixels outside: the exact background."""
    return torch.where(mask > 0.5, x, source)


def ranked_results(
    images: Tensor, seeds: list[int], scores: Tensor | None, params: dict
) -> list[EditResult]:
    """EditResults best first: by ascending `scores` (CLIP distance), or in seed order if None."""
    order = list(range(len(seeds)))
    if scores is not None:
        order.sort(key=lambda k: float(scores[k]))
    results = []
    for rank, k in enumerate(order):
        score = None if scores is None else float(scores[k])
        label = f"#{rank + 1} seed={seeds[k]}" + ("" if score is None else f" d={score:.4f}")
        extra = {"seed": seeds[k], "rank": rank + 1, **({} if score is None else {"score": score})}
        results.append(EditResult(images[k], label, {**params, **extra}, score))
    return results


def cached_clip(editor, device: torch.device | str):
    """The CLIP of an editor's `clip_path` / `clip_name`, loaded on first use and kept on the
    editor (`editor._clip`) for its later edits."""
    from editing.models.clip import load_clip

    if editor._clip is None:
        editor._clip = load_clip(editor.clip_path, editor.clip_name)
    return editor._clip.to(device)
