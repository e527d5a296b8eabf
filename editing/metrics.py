"""Editing metrics: fidelity (MSE, PSNR, SSIM, LPIPS), text alignment (CLIP) and masked variants.

Conventions for every function here:
- images are float tensors [B, 3, H, W] with values in [0, 1] (checked: a wrong shape, range or a
  NaN raises ValueError); pairs must have equal shapes;
- masks are [B, 1, H, W] or [1, 1, H, W] with values in {0, 1} (bool allowed), 1 = the edited region;
- results are per-image float32 tensors [B] on the images' device (callers average); computation
  runs on the inputs' device without gradients and is deterministic.

Masked variants follow PIE-Bench (Ju et al., "Direct Inversion: Boosting Diffusion-based Editing
with 3 Lines of Code", `evaluation/evaluate.py` + `matrics_calculator.py` of its reference code):
background metrics ("*_unedit_part") are computed outside the mask, edited-region ones inside it.
SSIM, LPIPS and the region CLIP score are computed on images whose other region is zeroed (both
inputs multiplied by the region mask), as the reference does. For MSE/PSNR the reference also zeroes
the other region and then averages over the *whole* image; here the default averages over the
selected pixels only (`normalize="region"`, the MSE of the region itself); `normalize="image"`
reproduces the reference numbers (e.g. to compare with published PIE-Bench background PSNR). An
empty region gives NaN, where the reference writes "nan". PIE-Bench's LPIPS uses the SqueezeNet
backbone (`net="squeeze"`, needs torchvision's weights in the torch hub cache); the default here is
AlexNet, whose weights ship offline (see `editing.models.lpips_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from editing.models.clip import ClipModel
from editing.models.lpips_weights import LPIPS_MIN_SIZE, canonical_net, make_lpips

__all__ = [
    "check_images",
    "check_mask",
    "clip_directional_similarity",
    "clip_image_similarity",
    "clip_score",
    "lpips_distance",
    "masked_clip_score",
    "masked_lpips",
    "masked_mse",
    "masked_psnr",
    "masked_ssim",
    "mse",
    "psnr",
    "region_mask",
    "ssim",
]

Region = Literal["outside", "inside"]


def check_images(x: Tensor, name: str = "images") -> Tensor:
    """Validate [B, 3, H, W] float images in [0, 1]; return them as float32."""
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor [B, 3, H, W], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point in [0, 1], got dtype {x.dtype}")
    x = x.float()
    if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise ValueError(
            f"{name} must have values in [0, 1] (got min {x.min().item():.4g}, "
            f"max {x.max().item():.4g}); map [-1, 1] images with (x + 1) / 2"
        )
    return x


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    x, y = check_images(x, "first images"), check_images(y, "second images")
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    return x, y.to(x.device)


def check_mask(mask: Tensor, like: Tensor) -> Tensor:
    """Validate a {0, 1} mask [B, 1, H, W] or [1, 1, H, W] for images `like`; float32 on their device."""
    b, _, h, w = like.shape
    if not isinstance(mask, Tensor) or mask.ndim != 4 or mask.shape[1] != 1:
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a tensor [B, 1, H, W] or [1, 1, H, W], got {shape}")
    if mask.shape[0] not in (1, b) or mask.shape[-2:] != (h, w):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not fit images {tuple(like.shape)}; "
            f"expected [{b} or 1, 1, {h}, {w}]"
        )
    mask = mask.to(device=like.device, dtype=torch.float32)
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError("mask values must be 0 or 1 (1 = edited region); threshold it first")
    return mask


def region_mask(mask: Tensor, like: Tensor, region: Region) -> Tensor:
    """The selected region as a {0, 1} float mask [B or 1, 1, H, W]: `mask` inside, 1 - mask outside."""
    mask = check_mask(mask, like)
    if region == "inside":
        return mask
    if region == "outside":
        return 1.0 - mask
    raise ValueError(f"region must be 'outside' (background) or 'inside' (edited), got {region!r}")


def _nan_where_empty(values: Tensor, sel: Tensor) -> Tensor:
    empty = sel.expand(values.shape[0], -1, -1, -1).sum(dim=(1, 2, 3)) == 0
    return values.masked_fill(empty, float("nan"))


# --- fidelity ----------------------------------------------------------------------------------


@torch.no_grad()
def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per image over all channels and pixels: [B]."""
    x, y = _pair(x, y)
    return (x - y).pow(2).mean(dim=(1, 2, 3))


def _psnr_from_mse(m: Tensor) -> Tensor:
    """PSNR for data range 1.0: 10 log10(1 / mse); +inf for identical images."""
    return -10.0 * torch.log10(m)


@torch.no_grad()
def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB, data range 1.0: [B] (+inf where the images are equal)."""
    return _psnr_from_mse(mse(x, y))


@torch.no_grad()
def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Structural similarity (torchmetrics' Gaussian 11x11, sigma 1.5, data range 1.0): [B]."""
    x, y = _pair(x, y)
    return structural_similarity_index_measure(x, y, data_range=1.0, reduction="none").float()


@torch.no_grad()
def lpips_distance(x: Tensor, y: Tensor, net: str = "alex") -> Tensor:
    """LPIPS v0.1 distance (Zhang et al. 2018) with the given backbone: [B], 0 for equal images.

    Images are mapped to [-1, 1] as the `lpips` package expects. The backbone needs a minimum size
    (`LPIPS_MIN_SIZE`: 31 px for AlexNet).
    """
    x, y = _pair(x, y)
    least = LPIPS_MIN_SIZE[canonical_net(net)]
    if min(x.shape[-2:]) < least:
        raise ValueError(
            f"LPIPS net={net!r} needs images of at least {least}x{least} pixels, "
            f"got {tuple(x.shape[-2:])}"
        )
    model = make_lpips(net, x.device)
    return model(x * 2 - 1, y * 2 - 1).flatten().float()


# --- masked fidelity (PIE-Bench) ---------------------------------------------------------------


@torch.no_grad()
def masked_mse(
    x: Tensor,
    y: Tensor,
    mask: Tensor,
    region: Region = "outside",
    normalize: Literal["region", "image"] = "region",
) -> Tensor:
    """MSE over one region of the mask: [B] (NaN where the region is empty).

    `normalize="region"`: sum of squared errors over the selected pixels / their number (x3
    channels). `normalize="image"`: PIE-Bench's reference, both images times the region mask, then
    the mean over the whole image.
    """
    x, y = _pair(x, y)
    sel = region_mask(mask, x, region)
    sq = ((x - y) * sel).pow(2).sum(dim=(1, 2, 3))
    if normalize == "region":
        count = sel.expand(x.shape[0], 1, -1, -1).sum(dim=(1, 2, 3)) * x.shape[1]
    elif normalize == "image":
        count = torch.full_like(sq, float(x[0].numel()))
    else:
        raise ValueError(f"normalize must be 'region' or 'image', got {normalize!r}")
    return _nan_where_empty(sq / count.clamp(min=1), sel)


@torch.no_grad()
def masked_psnr(
    x: Tensor,
    y: Tensor,
    mask: Tensor,
    region: Region = "outside",
    normalize: Literal["region", "image"] = "region",
) -> Tensor:
    """PSNR (dB, data range 1.0) of `masked_mse` (see there for `normalize`): [B]."""
    return _psnr_from_mse(masked_mse(x, y, mask, region, normalize))


@torch.no_grad()
def masked_ssim(x: Tensor, y: Tensor, mask: Tensor, region: Region = "outside") -> Tensor:
    """SSIM of the two images with the other region zeroed (PIE-Bench): [B], NaN if empty."""
    x, y = _pair(x, y)
    sel = region_mask(mask, x, region)
    return _nan_where_empty(ssim(x * sel, y * sel), sel)


@torch.no_grad()
def masked_lpips(
    x: Tensor, y: Tensor, mask: Tensor, region: Region = "outside", net: str = "alex"
) -> Tensor:
    """LPIPS of the two images with the other region zeroed (PIE-Bench): [B], NaN if empty."""
    x, y = _pair(x, y)
    sel = region_mask(mask, x, region)
    return _nan_where_empty(lpips_distance(x * sel, y * sel, net=net), sel)


# --- CLIP --------------------------------------------------------------------------------------


def _texts(texts: str | Sequence[str], batch: int) -> list[str]:
    texts = [texts] * batch if isinstance(texts, str) else list(texts)
    if len(texts) != batch:
        raise ValueError(f"got {len(texts)} texts for {batch} images; give one per image or one")
    return texts


@torch.no_grad()
def clip_score(clip: ClipModel, images: Tensor, texts: str | Sequence[str]) -> Tensor:
    """CLIPScore as torchmetrics defines it: 100 * max(cos(E_I(image), E_T(text)), 0): [B].

    `texts`: one string per image, or one string for all. Uses our local `ClipModel` (torchmetrics'
    own CLIPScore loads a Hugging Face CLIP, which would download).
    """
    images = check_images(images)
    cos = (clip.encode_image(images) * clip.encode_text(_texts(texts, images.shape[0]))).sum(-1)
    return (100.0 * cos.clamp(min=0)).to(images.device)


@torch.no_grad()
def masked_clip_score(
    clip: ClipModel,
    images: Tensor,
    texts: str | Sequence[str],
    mask: Tensor,
    region: Region = "inside",
) -> Tensor:
    """CLIPScore of the images times the region mask (PIE-Bench's edited-region CLIP similarity):
    [B], NaN where the region is empty."""
    images = check_images(images)
    sel = region_mask(mask, images, region)
    return _nan_where_empty(clip_score(clip, images * sel, texts), sel)


@torch.no_grad()
def clip_image_similarity(clip: ClipModel, a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of the CLIP image embeddings of `a` and `b` (in [-1, 1]): [B]."""
    a, b = _pair(a, b)
    return (clip.encode_image(a) * clip.encode_image(b)).sum(-1).to(a.device)


@torch.no_grad()
def clip_directional_similarity(
    clip: ClipModel,
    source_images: Tensor,
    edited_images: Tensor,
    source_texts: str | Sequence[str],
    target_texts: str | Sequence[str],
) -> Tensor:
    """Directional CLIP similarity (StyleGAN-NADA; InstructPix2Pix's metric): [B] in [-1, 1].

    cos(E_I(edited) - E_I(source), E_T(target) - E_T(source)): does the image change in the
    direction the text changes?
    """
    src, dst = _pair(source_images, edited_images)
    n = src.shape[0]
    d_img = clip.encode_image(dst) - clip.encode_image(src)
    d_txt = clip.encode_text(_texts(target_texts, n)) - clip.encode_text(_texts(source_texts, n))
    return torch.nn.functional.cosine_similarity(d_img, d_txt, dim=-1).to(src.device)
