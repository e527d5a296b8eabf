"""`AttentionStore`: attention maps averaged over denoising steps, per layer.

The maps behind Prompt-to-Prompt's visualisations (Fig. 4, "average cross-attention maps") and
LocalBlend's masks (Sec. 3.2). Only the conditional half of the batch is stored, one map per
prompt, averaged over heads when recorded (memory: a self-attention map is [h*w, h*w] per head) and
over steps when read. As in the reference code, only maps up to a size are kept by default (the
reference keeps <= 32x32 at 512 px, i.e. half the latent side: `max_scale=0.5`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from editing.attention.controller import AttentionController
from editing.attention.site import PLACES, AttentionSite
from editing.errors import UserInputError


def _matches(site: AttentionSite, resolution: int | float) -> bool:
    """`resolution` is a map side (int, e.g. 16) or a fraction of the latent side (float, 0.25)."""
    if site.size is None:
        return False
    if isinstance(resolution, float):
        return site.has_scale(resolution)
    return site.size[0] == int(resolution)


class AttentionStore(AttentionController):
    """Accumulates the conditional attention maps of the chosen layers over sampling steps.

    Args:
        places: UNet parts to record ("down", "mid", "up").
        cross: record cross-attention maps ([h*w, tokens]).
        self_attention: record self-attention maps ([h*w, h*w]).
        max_scale: largest map side recorded, as a fraction of the latent side (reference 0.5).
        min_scale: smallest map side recorded, same unit.
    """

    def __init__(
        self,
        places: Sequence[str] = PLACES,
        cross: bool = True,
        self_attention: bool = True,
        max_scale: float = 0.5,
        min_scale: float = 0.0,
    ) -> None:
        super().__init__()
        self.places = tuple(places)
        self.cross = cross
        self.self_attention = self_attention
        self.max_scale = max_scale
        self.min_scale = min_scale
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.sites: dict[str, AttentionSite] = {}

    def reset(self) -> None:
        super().reset()
        self.sums.clear()
        self.counts.clear()
        self.sites.clear()

    def wants(self, site: AttentionSite) -> bool:
        kind = self.cross if site.is_cross else self.self_attention
        scale = site.scale
        return (
            kind
            and site.place in self.places
            and scale is not None
            and self.min_scale - 1e-9 <= scale <= self.max_scale + 1e-9
        )

    def observe(self, probs: Tensor, site: AttentionSite) -> None:
        """Add the head-averaged maps [P, Lq, Lk] of this call to the layer's running sum."""
        maps = probs.detach().float().mean(dim=1)
        if site.name in self.sums:
            self.sums[site.name] += maps
            self.counts[site.name] += 1
        else:
            self.sums[site.name] = maps.clone()
            self.counts[site.name] = 1
            self.sites[site.name] = site

    # --------------------------------------------------------------------------------- reading
    def available(self, is_cross: bool = True) -> list[tuple[str, tuple[int, int]]]:
        """(place, map size) of every stored layer of one kind, for messages and exploration."""
        return [(s.place, s.size) for s in self.sites.values() if s.is_cross == is_cross]

    def maps(
        self, resolution: int | float, places: Sequence[str] = PLACES, is_cross: bool = True
    ) -> Tensor:
        """Maps of every prompt averaged over steps and over the matching layers: [P, h, w, Lk].

        Args:
            resolution: map side (int, e.g. 16) or fraction of the latent side (float, e.g. 0.25).
            places: UNet parts whose layers are averaged.
            is_cross: cross-attention (Lk = tokens) or self-attention (Lk = h * w) maps.
        """
        picked = [
            (site, self.sums[name] / self.counts[name])
            for name, site in self.sites.items()
            if site.is_cross == is_cross and site.place in places and _matches(site, resolution)
        ]
        if not picked:
            kind = "cross" if is_cross else "self"
            have = sorted({(p, s) for p, s in self.available(is_cross)})
            raise UserInputError(
                f"no stored {kind}-attention maps at resolution {resolution!r} in {list(places)}; "
                f"stored: {', '.join(f'{p} {h}x{w}' for p, (h, w) in have) or 'none'}. "
                "Give a map side (int) or a fraction of the latent side (float) from that list."
            )
        h, w = picked[0][0].size
        mean = torch.stack([m for _, m in picked]).mean(dim=0)
        return mean.reshape(mean.shape[0], h, w, mean.shape[-1])

    def aggregate(
        self,
        resolution: int | float,
        places: Sequence[str] = PLACES,
        is_cross: bool = True,
        prompt_index: int = 0,
    ) -> Tensor:
        """The averaged maps of one prompt: [h, w, Lk] (reference `aggregate_attention`)."""
        return self.maps(resolution, places, is_cross)[prompt_index]
