"""The attention-controller protocol: step bookkeeping and the classifier-free-guidance batch layout.

A controller is told, by the sampling loop, which denoising step is running (`begin_step`), is asked
by every attention layer whether it needs that layer's probabilities (`wants`), may read and rewrite
them (`__call__`), and may rewrite the samples after each DDIM step (`end_step`, used by LocalBlend).

Batch layout (fixed by `editing.editors.p2p_sampling.p2p_sample`): the UNet batch is

    [uncond(prompt_0), ..., uncond(prompt_{P-1}), cond(prompt_0), ..., cond(prompt_{P-1})]

with prompts ordered [source, edit_1, ..., edit_K] (P = K + 1). As in the public reference code,
only the conditional half is observed and edited (the unconditional branch keeps its own maps), and
prompt 0, the source, is never modified: subclasses only ever return the rows of the edits, so the
source row is reassembled untouched by construction.
"""

from __future__ import annotations

import torch
from torch import Tensor

from editing.attention.site import AttentionSite


class AttentionController:
    """The identity controller (no edits) and the base class of every controller.

    With this controller the UNet is bit-identical to running it without one: `wants` is always
    False, so every layer runs its original processor.

    Subclasses override some of:
        `wants(site)`: whether the probabilities of this call are needed (default: no).
        `observe(probs, site)`: read the conditional maps [P, heads, Lq, Lk].
        `edit(source, edits, site)`: rewrite the edits' maps [K, heads, Lq, Lk] given the source's
            [heads, Lq, Lk]; returns the new [K, heads, Lq, Lk].
        `blend(x_src, x_edits)`: rewrite the edits' samples [K, C, h, w] after a DDIM step.
        `reset()`: forget everything accumulated in a previous run.
    """

    num_prompts: int | None = None
    """P, when the controller was built for a fixed list of prompts (checked on every call)."""

    def __init__(self) -> None:
        self.step = 0
        self.num_steps = 1

    # ----------------------------------------------------------------------- step bookkeeping
    def reset(self) -> None:
        """Start a new sampling run (called by `p2p_sample` before its first step)."""
        self.step = 0
        self.num_steps = 1

    def begin_step(self, i: int, num_steps: int) -> None:
        """Sampling step i of num_steps (0-based, in sampling order) is about to run."""
        self.step = int(i)
        self.num_steps = int(num_steps)

    def step_window(self, bounds: float | tuple[float, float]) -> range:
        """Steps covered by a fraction `f` (= (0, f)) or a pair (start, end) of the schedule.

        As in the reference code: steps int(start * N) <= i < int(end * N).
        """
        start, end = (0.0, bounds) if isinstance(bounds, (int, float)) else bounds
        return range(int(start * self.num_steps), int(end * self.num_steps))

    # ---------------------------------------------------------------------- attention hooks
    def wants(self, site: AttentionSite) -> bool:
        """Whether this call needs the attention probabilities (False: original processor runs)."""
        return False

    def observe(self, probs: Tensor, site: AttentionSite) -> None:
        """Read the conditional maps probs [P, heads, Lq, Lk] (softmax over the last dim)."""

    def edit(self, source: Tensor, edits: Tensor, site: AttentionSite) -> Tensor:
        """New maps for the edits: source [heads, Lq, Lk], edits [K, heads, Lq, Lk] -> [K, ...]."""
        return edits

    def __call__(self, probs: Tensor, site: AttentionSite) -> Tensor:
        """Observe and edit the UNet batch's maps probs [2P, heads, Lq, Lk]; returns the same shape.

        The unconditional half and the source row are returned unchanged.
        """
        uncond, cond = self.split(probs)
        self.observe(cond, site)
        if cond.shape[0] == 1:
            return probs
        edits = self.edit(cond[0], cond[1:], site)
        return torch.cat([uncond, cond[:1], edits.to(probs.dtype)])

    def split(self, batch: Tensor) -> tuple[Tensor, Tensor]:
        """(unconditional half, conditional half) of a [2P, ...] UNet batch, checking P."""
        if batch.shape[0] % 2:
            raise ValueError(
                f"attention batch of {batch.shape[0]} is not [uncond x P; cond x P]: Prompt-to-Prompt "
                "controllers need the classifier-free-guidance batch that p2p_sample builds"
            )
        half = batch.shape[0] // 2
        if self.num_prompts is not None and half != self.num_prompts:
            raise ValueError(
                f"{type(self).__name__} was built for {self.num_prompts} prompts but the UNet batch "
                f"holds {half} (expected [uncond x P; cond x P] with P = {self.num_prompts})"
            )
        return batch[:half], batch[half:]

    # ------------------------------------------------------------------------ sample hook
    def blend(self, x_src: Tensor, x_edits: Tensor) -> Tensor:
        """New edit samples after a DDIM step: x_src [C, h, w], x_edits [K, C, h, w] -> [K, ...]."""
        return x_edits

    def end_step(self, x: Tensor) -> Tensor:
        """Called with the samples x [P, C, h, w] after each DDIM step; the source row is kept."""
        if x.shape[0] == 1:
            return x
        return torch.cat([x[:1], self.blend(x[0], x[1:]).to(x.dtype)])


class ComposedController(AttentionController):
    """Several controllers applied in order (e.g. an edit, then a store that sees its result).

    Each controller observes the maps as left by the previous ones; `end_step` hooks run in order.
    """

    def __init__(self, *controllers: AttentionController) -> None:
        super().__init__()
        self.controllers = list(controllers)

    def reset(self) -> None:
        super().reset()
        for c in self.controllers:
            c.reset()

    def begin_step(self, i: int, num_steps: int) -> None:
        super().begin_step(i, num_steps)
        for c in self.controllers:
            c.begin_step(i, num_steps)

    def wants(self, site: AttentionSite) -> bool:
        return any(c.wants(site) for c in self.controllers)

    def __call__(self, probs: Tensor, site: AttentionSite) -> Tensor:
        for c in self.controllers:
            if c.wants(site):
                probs = c(probs, site)
        return probs

    def end_step(self, x: Tensor) -> Tensor:
        for c in self.controllers:
            x = c.end_step(x)
        return x
