"""CLIP guidance for Blended Diffusion (Avrahami et al., CVPR 2022): augmentations and losses.

The guidance signal of Algorithms 1-3 is the gradient of

    L = lambda_clip * D_CLIP(aug(x_in) ⊙ aug(m), d) + lambda_range * R(x0_hat)
        [+ lambda_bg * D_bg(x_in, x0, m)]                                      (Algorithm 1 only)

with `x_in = x0_hat * s + x_t * (1 - s)`, `s = sqrt(1 - a_t)` (the reference code's mixing of the
predicted clean image with the noisy sample), D_CLIP the spherical distance of CLIP embeddings
(`editing.models.clip.spherical_distance`) averaged over N "extending augmentations" of the image (paper
Sec. 4.3: N random affine + perspective copies, the same transform for image and mask; paper
N = 16, reference code 8), R the range loss and D_bg = (MSE + LPIPS) / 2 outside the mask.

All losses return one value per candidate [B]; their sum over the batch has per-candidate
gradients (the candidates do not interact), as the reference's `clip_loss` sums per-image means.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from editing.diffusion.noise import rand_per_sample
from editing.errors import UserInputError
from editing.models.clip import ClipModel, spherical_distance
from editing.models.lpips_weights import LPIPS_MIN_SIZE

_CORNERS = ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))


# --- extending augmentations -------------------------------------------------------------------


def _homography(src: Tensor, dst: Tensor) -> Tensor:
    """[K, 3, 3] projective maps sending the 4 points src[k] [4, 2] to dst[k] (DLT, h33 = 1)."""
    k = src.shape[0]
    x, y, u, v = src[..., 0], src[..., 1], dst[..., 0], dst[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=1)  # [K, 8, 8]
    b = torch.cat([u, v], dim=1)  # [K, 8]
    h = torch.linalg.solve(a, b)
    return torch.cat([h, torch.ones(k, 1, dtype=h.dtype, device=h.device)], dim=1).view(k, 3, 3)


@functools.lru_cache(maxsize=8)
def _pixel_centres(h: int, w: int, device: torch.device) -> Tensor:
    """[1, H * W, 3] homogeneous pixel-centre coordinates in [-1, 1] (align_corners=False)."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) * 2 + 1) / h - 1
    xs = (torch.arange(w, device=device, dtype=torch.float32) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).view(1, h * w, 3)


def warp(x: Tensor, matrices: Tensor, padding_mode: str = "border") -> Tensor:
    """Resample [K, C, H, W] at M q for each output pixel centre q ([-1, 1] coordinates).

    `matrices` [K, 3, 3]; identity matrices return x unchanged up to bilinear rounding.
    """
    k, _, h, w = x.shape
    src = _pixel_centres(h, w, x.device) @ matrices.to(torch.float32).transpose(1, 2)  # [K, HW, 3]
    grid = (src[..., :2] / src[..., 2:].clamp(min=1e-6)).view(k, h, w, 2)
    return F.grid_sample(x, grid.to(x.dtype), "bilinear", padding_mode, align_corners=False)


class ExtendingAugmentations:
    """N copies per image: copy 0 as is, copies 1..N-1 randomly warped (Blended Diffusion Sec. 4.3).

    Each augmented copy is a random affine map (rotation within +-`degrees`, translation within
    +-`translate` of the size; applied with probability `p`) after a random perspective map
    (each corner of the image moved inwards by up to `distortion` of the half-size, the content
    shrunk into that quadrilateral; probability `p`): the
    reference code's kornia `RandomAffine(15, translate=0.1, p=0.7, padding_mode="border")` and
    `RandomPerspective(0.7, p=0.7)`, here as one projective resampling with `padding_mode`. The
    parameters of candidate b come from `generators[b]`, so a candidate's draws do not depend on
    the batch it runs in.

    Args:
        num_copies: N, the copies per image, the un-augmented one included (paper 16, code 8).
    """

    def __init__(
        self,
        num_copies: int = 16,
        degrees: float = 15.0,
        translate: float = 0.1,
        distortion: float = 0.7,
        p: float = 0.7,
        padding_mode: str = "border",
    ) -> None:
        if num_copies < 1:
            raise UserInputError(f"method.num_augmentations must be >= 1, got {num_copies}")
        self.num_copies = int(num_copies)
        self.degrees, self.translate = float(degrees), float(translate)
        self.distortion, self.p, self.padding_mode = float(distortion), float(p), padding_mode

    def sample(self, generators: Sequence[torch.Generator], device) -> Tensor:
        """[N, B, 3, 3] sampling maps (copy-major) for `warp`; copy 0 is the identity.

        Copy k shows the image moved by F_k = affine_k @ perspective_k (content coordinates), so
        its sampling map is F_k^-1: a point q of the copy shows the input at F_k^-1 q."""
        n, b = self.num_copies - 1, len(generators)
        eye = torch.eye(3, device=device).expand(1, b, 3, 3)
        if n == 0:
            return eye.clone()
        # 1. Uniform draws per candidate: [B, n, 13] -> [n * B, 13] in copy-major order.
        u = torch.stack(rand_per_sample(list(generators), (n, 13), device), 1)
        u = u.reshape(n * b, 13)
        # 2. Affine: rotation and translation, applied with probability p.
        angle = (2 * u[:, 0] - 1) * math.radians(self.degrees)
        shift = (2 * u[:, 1:3] - 1) * 2 * self.translate  # [-1, 1] coordinates span 2
        affine = torch.zeros(n * b, 3, 3, device=device, dtype=torch.float64)
        affine[:, 0, 0], affine[:, 0, 1] = angle.cos(), -angle.sin()
        affine[:, 1, 0], affine[:, 1, 1] = angle.sin(), angle.cos()
        affine[:, :2, 2], affine[:, 2, 2] = shift.double(), 1.0
        identity = torch.eye(3, device=device, dtype=torch.float64).expand_as(affine)
        affine = torch.where((u[:, 3] < self.p).view(-1, 1, 1), affine, identity)
        # 3. Perspective: the image's corners sent to points moved inwards (kornia's start ->
        #    end points), applied with probability p.
        corners = torch.tensor(_CORNERS, device=device, dtype=torch.float64).expand(n * b, 4, 2)
        moved = corners - corners.sign() * self.distortion * u[:, 4:12].double().view(-1, 4, 2)
        persp = _homography(corners, moved)
        persp = torch.where((u[:, 12] < self.p).view(-1, 1, 1), persp, identity)
        # 4. The content moves by the perspective map, then the affine one: F = A P. `warp` reads
        #    the input at M q, so the sampling map is the inverse M = F^-1 (the content shrinks
        #    into the moved corners, as kornia's warps; M = F would zoom into a crop).
        sampling = torch.linalg.inv(affine @ persp).float()
        return torch.cat([eye, sampling.view(n, b, 3, 3)])

    def __call__(
        self, *tensors: Tensor, generators: Sequence[torch.Generator]
    ) -> tuple[Tensor, ...]:
        """Augment each [B or 1, C, H, W] tensor with the same N maps: [N * B, C, H, W] each.

        Output order is copy-major, [x_1..x_B (as is), x_1..x_B (aug 1), ...], as the reference.
        """
        b = len(generators)
        matrices = self.sample(generators, tensors[0].device).reshape(-1, 3, 3)
        out = []
        for x in tensors:
            x = x.expand(b, -1, -1, -1).repeat(self.num_copies, 1, 1, 1)
            out.append(warp(x, matrices, self.padding_mode))
        return tuple(out)


# --- losses ------------------------------------------------------------------------------------


def resize_for_clip(x: Tensor, size: tuple[int, int]) -> Tensor:
    """[B, C, H, W] to CLIP's input size: adaptive average pooling when shrinking (the reference
    code's `AdaptiveAvgPool2d`), bilinear interpolation when enlarging."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def clip_loss(
    clip: ClipModel,
    x_in: Tensor,
    mask: Tensor,
    text_emb: Tensor,
    augment: ExtendingAugmentations,
    generators: Sequence[torch.Generator],
) -> Tensor:
    """D_CLIP of the masked region, averaged over the N copies: [B] (differentiable in x_in).

    Args:
        x_in: [B, 3, H, W] in [-1, 1]; mask: [1, 1, H', W'] (1 = edit; callers may pass it already
            at CLIP's input size, it is resized otherwise); text_emb: [1, D] normalised.
    The masked image is taken in [-1, 1] and then mapped to [0, 1] (outside the mask: mid gray),
    as the reference's `clip_loss`.
    """
    size = clip.image_size
    image, m = augment(
        resize_for_clip(x_in, size), resize_for_clip(mask, size), generators=generators
    )
    embeddings = clip.encode_image((image * m).add(1).div(2))  # [N * B, D]
    distances = spherical_distance(embeddings, text_emb)
    return distances.view(augment.num_copies, x_in.shape[0]).mean(0)


def range_loss(x0_hat: Tensor) -> Tensor:
    """Mean squared excursion of x0_hat outside [-1, 1]: [B] (the reference's `range_loss`)."""
    return (x0_hat - x0_hat.clamp(-1, 1)).pow(2).mean(dim=(1, 2, 3))


def background_loss(
    x_in: Tensor, x0: Tensor, mask: Tensor, lpips_model, min_size: int = LPIPS_MIN_SIZE["vgg"]
) -> Tensor:
    """Algorithm 1's D_bg = (MSE + LPIPS) / 2 between x_in and the source outside the mask: [B].

    x_in [B, 3, H, W], x0 [1, 3, H, W] in [-1, 1]; `lpips_model` from `make_lpips` (the reference
    uses VGG). Both images are multiplied by (1 - m), the paper's D_bg(x ⊙ (1 - m), x0 ⊙ (1 - m)).
    Images smaller than the backbone's `min_size` are enlarged bilinearly for LPIPS only.
    """
    keep = 1.0 - mask
    a, b = x_in * keep, (x0 * keep).expand_as(x_in)
    mse = (a - b).pow(2).mean(dim=(1, 2, 3))
    if min(a.shape[-2:]) < min_size:
        a = F.interpolate(a, size=(min_size, min_size), mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=(min_size, min_size), mode="bilinear", align_corners=False)
    lp = lpips_model(a, b).flatten()
    return (mse + lp) / 2


@torch.no_grad()
def masked_clip_distance(clip: ClipModel, images: Tensor, mask: Tensor, text_emb: Tensor) -> Tensor:
    """The ranking score: un-augmented D_CLIP of the edited region, [B] (lower is better).

    images: [B, 3, H, W] in [-1, 1]; mapped to [0, 1], clamped, times the mask (outside: black),
    as the reference's final `unaugmented_clip_distance`.
    """
    x = images.add(1).div(2).clamp(0, 1) * mask
    return spherical_distance(clip.encode_image(x), text_emb)
