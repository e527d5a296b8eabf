"""`AttentionEdit`: what Replace, Refine and Reweight share (Prompt-to-Prompt Sec. 3.2).

For a source prompt P and an edited prompt P*, each step of the edited branch uses

    M_hat_t = Edit(M_t, M*_t, t)          (P2P Sec. 3.2, Algorithm 1 line 6)

where M_t are the source's maps and M*_t the edited branch's own. The edit is applied:
- to cross-attention maps for the steps within `cross_replace_steps` (the paper's tau: "injecting
  the attention maps only in the first steps", Sec. 3.2), optionally with a different window per
  word of the edited prompt (reference code: `cross_replace_steps={"default_": 0.8, "word": 0.4}`);
- to self-attention maps, replaced by the source's, within `self_replace_steps`, and only on maps no
  larger than `self_replace_max_scale` of the latent side (reference code: <= 32x32 at 512 px, i.e.
  0.5 of the 64-latent side; the self-attention injection comes from the public reference code).
Subclasses define `map_cross`: the Edit function on cross-attention maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from editing.attention.blend import LocalBlend
from editing.attention.controller import AttentionController
from editing.attention.site import AttentionSite
from editing.attention.words import check_prompt_lengths, word_indices
from editing.errors import UserInputError

Window = float | tuple[float, float]
"""A fraction f of the sampling steps (the first f) or a pair (start, end) of fractions."""


def _check_window(bounds: Window, name: str) -> tuple[float, float]:
    start, end = (0.0, bounds) if isinstance(bounds, (int, float)) else tuple(bounds)
    if not 0.0 <= float(start) <= float(end) <= 1.0:
        raise UserInputError(
            f"{name}={bounds!r} must be a fraction in [0, 1] or a pair start <= end"
        )
    return float(start), float(end)


class AttentionEdit(AttentionController):
    """Base of the editing controllers: step windows, self-attention injection, local blending.

    Args:
        prompts: [source, edit_1, ..., edit_K] (K >= 1), in the order of the sampling batch.
        tokenizer: the text encoder's tokenizer (token positions, `model_max_length` keys).
        cross_replace_steps: window of steps where cross-attention is edited: a fraction, a pair,
            or a dict {"default_": window, word: window, ...} with per-word windows (words of the
            edited prompts).
        self_replace_steps: window of steps where self-attention maps are the source's.
        self_replace_max_scale: largest self-attention map side injected, as a fraction of the
            latent side (reference: 0.5).
        local_blend: optional `LocalBlend`, applied after every DDIM step and fed with the
            edited branches' maps after the edit (`maps="edited"`, as the public reference stores
            them after editing them in place) or their own maps from before it (`maps="own"`).
    """

    def __init__(
        self,
        prompts: Sequence[str],
        tokenizer,
        cross_replace_steps: Window | Mapping[str, Window] = 0.8,
        self_replace_steps: Window = 0.4,
        self_replace_max_scale: float = 0.5,
        local_blend: LocalBlend | None = None,
    ) -> None:
        super().__init__()
        if len(prompts) < 2:
            raise UserInputError(
                f"{type(self).__name__} needs the source prompt and at least one edited prompt, "
                f"got {list(prompts)!r}"
            )
        check_prompt_lengths(tokenizer, prompts)
        self.prompts = list(prompts)
        self.num_prompts = len(self.prompts)
        self.tokenizer = tokenizer
        self.length = int(tokenizer.model_max_length)
        self.self_window = _check_window(self_replace_steps, "self_replace_steps")
        self.self_replace_max_scale = float(self_replace_max_scale)
        self.local_blend = local_blend
        if local_blend is not None and local_blend.num_prompts != self.num_prompts:
            raise ValueError("local_blend was built for another number of prompts")
        self.token_windows = self._token_windows(cross_replace_steps)
        self.cross_now = torch.zeros(self.num_prompts - 1, self.length, dtype=torch.bool)
        self.cross_any = False
        self.prepare()

    def prepare(self) -> None:
        """What a subclass derives from the prompts once the shared settings are checked (its
        prompt checks, token alignments); nothing by default."""

    def _token_windows(
        self, steps: Window | Mapping[str, Window]
    ) -> list[list[tuple[float, float]]]:
        """The cross-replacement window of every token of every edited prompt: [K][L] pairs."""
        spec = dict(steps) if isinstance(steps, Mapping) else {"default_": steps}
        default = _check_window(spec.pop("default_", 1.0), "cross_replace_steps['default_']")
        windows = [[default] * self.length for _ in self.prompts[1:]]
        for word, bounds in spec.items():
            window = _check_window(bounds, f"cross_replace_steps[{word!r}]")
            found = False
            for k, prompt in enumerate(self.prompts[1:]):
                try:
                    positions = word_indices(self.tokenizer, prompt, word)
                except UserInputError:
                    continue  # a word may belong to some of the edited prompts only
                found = True
                for j in positions:
                    windows[k][j] = window
            if not found:
                raise UserInputError(
                    f"cross_replace_steps names the word {word!r}, which is in none of the edited "
                    f"prompts {self.prompts[1:]!r}"
                )
        return windows

    # ---------------------------------------------------------------------------- bookkeeping
    def reset(self) -> None:
        super().reset()
        self.cross_now = torch.zeros(self.num_prompts - 1, self.length, dtype=torch.bool)
        self.cross_any = False
        if self.local_blend is not None:
            self.local_blend.reset()

    def begin_step(self, i: int, num_steps: int) -> None:
        """Also computes which tokens of which edits have their cross-attention replaced now."""
        super().begin_step(i, num_steps)
        if self.local_blend is not None:
            self.local_blend.begin_step(i, num_steps)
        self.cross_now = torch.tensor(
            [[i in self.step_window(w) for w in row] for row in self.token_windows],
            dtype=torch.bool,
        )
        self.cross_any = bool(self.cross_now.any())

    def cross_alpha(self, num_steps: int) -> Tensor:
        """The replacement table [num_steps, K, L] (True: edited token j uses the Edit at step i)."""
        table = torch.zeros(num_steps, len(self.token_windows), self.length, dtype=torch.bool)
        for k, row in enumerate(self.token_windows):
            for j, (start, end) in enumerate(row):
                table[int(start * num_steps) : int(end * num_steps), k, j] = True
        return table

    def self_active(self, site: AttentionSite) -> bool:
        scale = site.scale
        return (
            not site.is_cross
            and self.step in self.step_window(self.self_window)
            and scale is not None
            and scale <= self.self_replace_max_scale + 1e-9
        )

    # ------------------------------------------------------------------------------ editing
    def wants(self, site: AttentionSite) -> bool:
        edits = self.cross_any if site.is_cross else self.self_active(site)
        return edits or (self.local_blend is not None and self.local_blend.wants(site))

    def observe(self, probs: Tensor, site: AttentionSite) -> None:
        blend = self.local_blend
        if blend is not None and blend.maps == "own" and blend.wants(site):
            blend.observe(probs, site)

    def __call__(self, probs: Tensor, site: AttentionSite) -> Tensor:
        """The base protocol (`observe` the maps before the edit, then `edit`), and LocalBlend
        with `maps="edited"` observes the conditional maps as edited: [source, *edits]."""
        out = super().__call__(probs, site)
        blend = self.local_blend
        if blend is not None and blend.maps == "edited" and blend.wants(site):
            blend.observe(self.split(out)[1], site)
        return out

    def map_cross(self, source: Tensor, edits: Tensor) -> Tensor:
        """Edit(M_t, M*_t) on cross-attention: source [H, N, L], edits [K, H, N, L] -> [K, H, N, L]."""
        raise NotImplementedError

    def edit(self, source: Tensor, edits: Tensor, site: AttentionSite) -> Tensor:
        """Cross: the Edit where the step window holds; self: the source's maps (see module doc)."""
        if site.is_cross:
            if edits.shape[-1] != self.length:
                raise ValueError(
                    f"cross-attention at {site.name} has {edits.shape[-1]} keys, the tokenizer "
                    f"{self.length}: the controller's tokenizer is not the UNet's text encoder's"
                )
            if not self.cross_any:
                return edits
            if self.cross_now.device != edits.device:
                self.cross_now = self.cross_now.to(edits.device)
            now = self.cross_now[:, None, None, :]  # [K, 1, 1, L]
            return torch.where(now, self.map_cross(source, edits), edits)
        if self.self_active(site):
            return source.expand_as(edits)
        return edits

    def blend(self, x_src: Tensor, x_edits: Tensor) -> Tensor:
        return x_edits if self.local_blend is None else self.local_blend.blend(x_src, x_edits)
