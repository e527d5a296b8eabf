"""`LocalBlend`: confine an edit to where the chosen words attend (Prompt-to-Prompt Sec. 3.2).

"Local editing": from the cross-attention maps of the words to edit, a binary mask m is built for
every edited branch, and after each denoising step the edited sample is blended with the source:

    x*_t := x_t + m * (x*_t - x_t)           (outside m the edited branch *is* the source)

Mask construction as in the public reference code (all knobs exposed; sizes resolution-aware):
1. average the stored cross-attention maps of the layers in `places` whose maps have side
   `resolution` x the latent side (reference: the 16x16 down/up layers at 512 px, i.e. 0.25 of 64),
   over heads, layers and all steps so far;
2. sum the maps of the prompt's words, max-pool with a (2 * dilation + 1) window (reference: 3x3),
   upsample (nearest) to the latent size, divide by the maximum, threshold (reference 0.3);
3. take the union with the source words' mask; optionally remove the mask of `subtract_words`
   (reference: `substruct_words`, no pooling);
4. blend from step int(start * N) on (reference: 0.2).

Which maps: `maps="edited"` (reference) reads each edited branch's maps after the
Prompt-to-Prompt edit, as the reference's `AttentionStore` stores them after the controller
rewrote them in place: inside the Replace window the edited branch's maps are the source's, so its
mask is the source words' region. `maps="own"` reads the edited branch's own maps from before the
edit, which locate the new words where the edited branch itself puts them: inside the window its
mask is the union of the source words' and the new words' regions. Outside every edit window the
maps are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from editing.attention.controller import AttentionController
from editing.attention.site import AttentionSite
from editing.attention.store import AttentionStore
from editing.attention.words import check_prompt_lengths, words_indices
from editing.errors import UserInputError

MAPS = ("edited", "own")
"""Which attention maps LocalBlend reads: after the Prompt-to-Prompt edit, or before it."""

Words = Sequence[str | Sequence[str] | None]
"""One entry per prompt: a word, several words, or None (no words for that prompt)."""


class LocalBlend(AttentionController):
    """Keeps each edited sample equal to the source outside a mask from its words' attention.

    Args:
        prompts: [source, edit_1, ..., edit_K], the sampling batch's prompts.
        tokenizer: the text encoder's tokenizer.
        words: per prompt, the word(s) whose attention defines the region to edit, e.g.
            ("cat", "tiger") for "a cat on a sofa" -> "a tiger on a sofa".
        subtract_words: optional, per prompt, words whose region is excluded from the mask.
        resolution: side of the maps used, as a fraction of the latent side (reference 0.25).
        places: UNet parts whose cross-attention layers are averaged (reference: down and up).
        threshold: mask threshold on the max-normalised map (reference 0.3).
        subtract_threshold: threshold of the subtracted mask (reference 0.3).
        start: fraction of the steps after which blending starts (reference 0.2).
        dilation: max-pooling radius in map pixels (reference 1, a 3x3 window).
        maps: "edited" (the maps after the attention edit, reference) or "own" (the edited
            branches' maps before the edit); see the module docstring.

    After a blended step, `mask` holds the last masks [K, 1, H, W] (bool).
    """

    def __init__(
        self,
        prompts: Sequence[str],
        tokenizer,
        words: Words,
        subtract_words: Words | None = None,
        resolution: float = 0.25,
        places: Sequence[str] = ("down", "up"),
        threshold: float = 0.3,
        subtract_threshold: float = 0.3,
        start: float = 0.2,
        dilation: int = 1,
        maps: str = "edited",
    ) -> None:
        super().__init__()
        if maps not in MAPS:
            raise UserInputError(f"LocalBlend maps={maps!r} is not one of {', '.join(MAPS)}")
        self.maps = maps
        check_prompt_lengths(tokenizer, prompts)
        self.num_prompts = len(prompts)
        self.weights = self._weights(prompts, tokenizer, words, "words")
        self.subtract = (
            None
            if subtract_words is None
            else self._weights(prompts, tokenizer, subtract_words, "subtract_words")
        )
        self.resolution = float(resolution)
        self.places = tuple(places)
        self.threshold = threshold
        self.subtract_threshold = subtract_threshold
        self.start = start
        self.dilation = int(dilation)
        self.store = AttentionStore(
            places=self.places,
            cross=True,
            self_attention=False,
            max_scale=self.resolution,
            min_scale=self.resolution,
        )
        self.mask: Tensor | None = None
        self.seen: set[tuple[str, tuple[int, int], float]] = set()

    @staticmethod
    def _weights(prompts: Sequence[str], tokenizer, words: Words, name: str) -> Tensor:
        """[P, L] float: 1 at the token positions of each prompt's words (reference `alpha_layers`)."""
        if isinstance(words, str) or len(words) != len(prompts):
            raise UserInputError(
                f"LocalBlend {name} needs one entry per prompt ({len(prompts)}: source first), "
                f"e.g. ('cat', 'tiger'); got {words!r}"
            )
        weights = torch.zeros(len(prompts), int(tokenizer.model_max_length))
        for p, (prompt, entry) in enumerate(zip(prompts, words)):
            weights[p, words_indices(tokenizer, prompt, entry)] = 1.0
        return weights

    def reset(self) -> None:
        super().reset()
        self.store.reset()
        self.mask = None

    def wants(self, site: AttentionSite) -> bool:
        if site.is_cross and site.size is not None:
            self.seen.add((site.place, site.size, site.scale))
        return self.store.wants(site)

    def observe(self, probs: Tensor, site: AttentionSite) -> None:
        self.store.observe(probs, site)

    def word_mask(
        self, maps: Tensor, weights: Tensor, size: tuple[int, int], pool: bool, th: float
    ) -> Tensor:
        """Binary masks [P, 1, H, W] from maps [P, h, w, L] and word weights [P, L] (steps 2-3)."""
        m = (maps * weights.to(maps)[:, None, None, :]).sum(dim=-1).unsqueeze(1)
        if pool and self.dilation > 0:
            k = self.dilation
            m = F.max_pool2d(m, kernel_size=2 * k + 1, stride=1, padding=k)
        m = F.interpolate(m, size=size, mode="nearest")
        m = m / m.amax(dim=(2, 3), keepdim=True).clamp_min(torch.finfo(m.dtype).tiny)
        mask = m > th
        return mask[:1] | mask  # every edit also changes the source words' region

    def blend(self, x_src: Tensor, x_edits: Tensor) -> Tensor:
        """x*_t = x_t + m (x*_t - x_t), as an exact select for the binary m: [K, C, H, W]."""
        if self.step < int(self.start * self.num_steps):
            return x_edits
        size = (x_src.shape[-2], x_src.shape[-1])
        if not self.store.sums:
            have = ", ".join(f"{p} {h}x{w} ({f:g})" for p, (h, w), f in sorted(self.seen))
            raise UserInputError(
                f"LocalBlend resolution={self.resolution:g} (maps of side {self.resolution:g} x the "
                f"{size[0]}x{size[1]} latent) in {list(self.places)} matches no cross-attention layer "
                f"of this UNet, which has: {have or 'none'}; choose resolution and places from these"
            )
        maps = self.store.maps(self.resolution, self.places, is_cross=True)  # [P, h, w, L]
        mask = self.word_mask(maps, self.weights, size, pool=True, th=self.threshold)
        if self.subtract is not None:
            mask &= ~self.word_mask(
                maps, self.subtract, size, pool=False, th=self.subtract_threshold
            )
        self.mask = mask[1:]
        return torch.where(self.mask, x_edits, x_src.unsqueeze(0))
