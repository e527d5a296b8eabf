"""Where an attention call happens: the layer metadata controllers decide on.

Prompt-to-Prompt edits attention maps per layer, and which layers it touches depends on where they
sit in the UNet (down / mid / up), whether they attend to the text (cross) or to the image (self),
and the spatial size of their maps. The public reference code hard-codes the sizes of Stable
Diffusion 1.x at 512 px ("<= 32x32", "16x16"); here every size is derived from the latent the UNet
is denoising, and controllers speak in *fractions of the latent side* (`AttentionSite.scale`), so
the same settings mean the same thing at 512 px, 768 px or on an 8x8 test latent.

Where cross-attention sits (`cross_attention_scales` reads it from a diffusers UNet's config: down
block k and up block n-1-k of n work at level k, the mid block at the deepest level n-1):

    SD 1.x / 2.x   down 1, 1/2, 1/4   mid 1/8   up 1/4, 1/2, 1     (512 px: 64, 32, 16 | 8 maps)
    SDXL 1.0       down 1/2, 1/4      mid 1/4   up 1/4, 1/2        (1024 px: 64, 32 maps)

SDXL's first down block and last up block (level 0, the full 128x128 latent at 1024 px) have no
attention; its level-1 blocks hold 2 transformer blocks per attention, its level-2 blocks and mid
block 10. `base_model=tiny_sdxl` mirrors the first two levels (no attention at level 0, cross-
attention at 1/2 in down, mid and up). A map's size is (ceil(H / 2^k), ceil(W / 2^k)) for an H x W
latent, so a non-square latent gives non-square maps of the same aspect (`map_level`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PLACES = ("down", "mid", "up")
"""The parts of a UNet an attention layer can sit in (`AttentionSite.place`); "other" otherwise."""


def place_of(name: str) -> str:
    """The UNet part ("down", "mid", "up") of a diffusers processor name ("up_blocks.1....")."""
    head = name.split(".", 1)[0]
    if head.startswith("down"):
        return "down"
    if head.startswith("mid"):
        return "mid"
    if head.startswith("up"):
        return "up"
    return "other"


def map_level(
    num_queries: int, latent_size: tuple[int, int], max_level: int = 8
) -> tuple[int, tuple[int, int]] | None:
    """The downsampling level k and the map size (h, w) of an attention layer with `num_queries`.

    A UNet halves its feature maps with stride-2 convolutions (padding 1), so level k has size
    (ceil(H / 2^k), ceil(W / 2^k)) for a latent of size (H, W). Returns None when no level matches
    (an architecture this module does not understand); controllers then leave the layer alone.
    """
    height, width = latent_size
    for k in range(max_level + 1):
        h, w = math.ceil(height / 2**k), math.ceil(width / 2**k)
        if h * w == num_queries:
            return k, (h, w)
        if h * w < num_queries:
            break
    return None


def cross_attention_scales(unet) -> dict[str, list[float]] | None:
    """The map scales (fractions of the latent side, 2^-level) of a diffusers UNet's cross-
    attention layers per place {"down": [...], "mid": [...], "up": [...]}, read from its
    config (module docstring); None for a UNet without diffusers block types."""
    config = getattr(unet, "config", None)
    down = getattr(config, "down_block_types", None)
    up = getattr(config, "up_block_types", None)
    if down is None or up is None:
        return None
    n = len(down)
    mid = getattr(config, "mid_block_type", None) or ""
    levels = {
        "down": [k for k, block in enumerate(down) if "CrossAttn" in block],
        "mid": [n - 1] if "CrossAttn" in mid else [],
        "up": [len(up) - 1 - j for j, block in enumerate(up) if "CrossAttn" in block],
    }
    return {place: sorted({2.0**-k for k in ks}, reverse=True) for place, ks in levels.items()}


@dataclass(frozen=True)
class AttentionSite:
    """One call of one attention layer, as a controller sees it.

    Attributes:
        name: the diffusers processor name ("down_blocks.0.attentions.0.transformer_blocks.0.attn2
            .processor"); unique per layer, used as the storage key.
        place: "down", "mid", "up" (or "other").
        is_cross: True for cross-attention (queries: image, keys: text tokens).
        size: (h, w) of the attention map over the image, None if it could not be derived.
        level: k such that the map is the latent downsampled 2^k times (None with `size`).
        latent_size: (H, W) of the sample the UNet is denoising.
    """

    name: str
    place: str
    is_cross: bool
    size: tuple[int, int] | None
    level: int | None
    latent_size: tuple[int, int]

    @property
    def scale(self) -> float | None:
        """The map side as a fraction of the latent side: 1, 1/2, 1/4, ... (2^-level).

        Stable Diffusion at 512 px (latent 64): 64x64 maps -> 1, 32x32 -> 0.5, 16x16 -> 0.25.
        """
        return None if self.level is None else 2.0**-self.level

    def has_scale(self, fraction: float) -> bool:
        """True when this map's side is `fraction` of the latent side."""
        return self.scale is not None and math.isclose(self.scale, fraction)
