"""CLIP guidance of Blended Diffusion: extending augmentations, CLIP/range/background losses."""

from __future__ import annotations

import math

import pytest
import torch

from editing.editors.blended_guidance import (
    ExtendingAugmentations,
    background_loss,
    clip_loss,
    masked_clip_distance,
    range_loss,
    resize_for_clip,
    warp,
)
from editing.io.masks import dilate_mask
from editing.models.clip import build_clip, spherical_distance

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return build_clip(TINY_CLIP).eval().requires_grad_(False)


def _gens(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + k) for k in range(n)]


def _blob_mask(size: int = 32) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (((x - 12) ** 2 + (y - 18) ** 2) < 40).float().view(1, 1, size, size)


def test_augmentation_applies_the_same_transform_to_image_and_mask():
    mask = _blob_mask()
    image = mask.expand(2, 3, -1, -1) * 2 - 1  # an image whose content is its mask
    aug = ExtendingAugmentations(num_copies=6, p=1.0)
    image_aug, mask_aug = aug(image, mask, generators=_gens(2))
    assert image_aug.shape == (12, 3, 32, 32) and mask_aug.shape == (12, 1, 32, 32)
    torch.testing.assert_close(
        image_aug, (mask_aug * 2 - 1).expand_as(image_aug), atol=1e-6, rtol=0
    )
    # Copy 0 (the first B outputs) is the un-augmented image; the others are really warped.
    torch.testing.assert_close(image_aug[:2], image, atol=1e-5, rtol=0)
    for k in range(2, 12):
        assert (mask_aug[k] - mask).abs().max() > 0.5
    # Each candidate's copies come from its own generator: batch composition does not matter.
    (alone,) = aug(mask, generators=_gens(1, seed=1))
    torch.testing.assert_close(alone[1], mask_aug[3], atol=1e-6, rtol=0)


def test_warp_identity_and_homography_maps_corners():
    x = torch.rand(1, 3, 9, 9)
    torch.testing.assert_close(warp(x, torch.eye(3).view(1, 3, 3)), x, atol=1e-6, rtol=0)
    aug = ExtendingAugmentations(num_copies=3, p=1.0, degrees=0.0, translate=0.0)
    matrices = aug.sample(_gens(1), "cpu")[1:].view(-1, 3, 3)
    assert matrices.shape == (2, 3, 3)
    # A perspective map keeps straight lines straight: the image of the centre row is collinear.
    pts = torch.tensor([[-1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    mapped = pts @ matrices[0].T
    mapped = mapped[:, :2] / mapped[:, 2:]
    d1, d2 = mapped[1] - mapped[0], mapped[2] - mapped[0]
    assert abs(float(d1[0] * d2[1] - d1[1] * d2[0])) < 1e-5


def test_clip_loss_is_per_candidate_mean_of_augmented_distances(clip):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 3, 16, 16, generator=g) * 2 - 1).requires_grad_(True)
    mask = _blob_mask(16)
    text = clip.encode_text(["a red circle"])
    aug = ExtendingAugmentations(num_copies=4)
    loss = clip_loss(clip, x, mask, text, aug, _gens(2))
    assert loss.shape == (2,)
    # Independent recomputation with the same draws.
    img, m = aug(resize_for_clip(x, (32, 32)), resize_for_clip(mask, (32, 32)), generators=_gens(2))
    u = clip.encode_image(((img * m) + 1) / 2)
    v = text.expand_as(u)
    d = 2 * torch.arcsin((u - v).norm(dim=-1) / 2) ** 2
    torch.testing.assert_close(loss, d.view(4, 2).mean(0))
    # Candidates do not interact: candidate 0's gradient ignores candidate 1's loss.
    (grad,) = torch.autograd.grad(loss[0], x)
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() == 0
    # Away from the mask the CLIP term has no gradient (the masked input is constant there).
    far = dilate_mask(mask, 2)[0, 0] == 0
    assert grad[0][:, far].abs().max() == 0


def test_range_and_background_losses():
    x = torch.zeros(2, 3, 8, 8)
    x[0, 0, 0, 0] = 3.0  # 2 above the range at one of 192 values
    assert range_loss(x).tolist() == pytest.approx([4.0 / 192, 0.0])
    x0 = torch.rand(1, 3, 16, 16) * 2 - 1
    mask = _blob_mask(16)
    from editing.models.lpips_weights import make_lpips

    lpips = make_lpips("vgg")
    same = x0.expand(2, -1, -1, -1).clone()
    same[1] = torch.where(mask[0] > 0, -x0[0], x0[0])  # changed only inside the mask
    assert background_loss(same, x0, mask, lpips).abs().max() < 1e-6
    other = same.clone()
    other[1] = torch.where(mask[0] > 0, x0[0], -x0[0])  # changed outside
    assert background_loss(other, x0, mask, lpips)[1] > 0.1


def test_masked_clip_distance_is_the_unaugmented_spherical_distance(clip):
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    mask = _blob_mask()
    text = clip.encode_text(["a blue square"])
    d = masked_clip_distance(clip, images, mask, text)
    with torch.no_grad():
        e = clip.encode_image(((images + 1) / 2).clamp(0, 1) * mask)
    cos = (torch.nn.functional.normalize(e, dim=-1) * text).sum(-1).clamp(-1, 1)
    torch.testing.assert_close(d, torch.arccos(cos) ** 2 / 2, rtol=1e-4, atol=1e-5)
    assert torch.equal(d, spherical_distance(e, text))
    assert float(d.max()) <= math.pi**2 / 2


def test_augmentations_shrink_content_into_the_frame():
    """Every copy shows the image shrunk into (or moved within) the frame, never a zoomed crop:
    a centred square keeps at most its area (rotation and translation keep it, the perspective
    part shrinks it), stays whole, and the mask goes through the same map as the image."""
    size, half = 32, 4
    square = torch.zeros(1, 1, size, size)
    square[..., size // 2 - half : size // 2 + half, size // 2 - half : size // 2 + half] = 1.0
    area = float(square.sum())
    image = square.expand(1, 3, -1, -1) * 3  # zero outside, as the zeros padding
    for p in (1.0, 0.7):
        aug = ExtendingAugmentations(num_copies=8, p=p, padding_mode="zeros")
        for seed in range(40):
            gens = _gens(1, seed)
            (warped,) = aug(square, generators=gens)
            gens = _gens(1, seed)
            image_aug, mask_aug = aug(image, square, generators=gens)
            torch.testing.assert_close(mask_aug, warped, atol=0, rtol=0)  # same draws, same map
            torch.testing.assert_close(image_aug, (mask_aug * 3).expand_as(image_aug))
            areas = warped.sum(dim=(1, 2, 3))
            assert float(areas.max()) <= area * 1.02, (p, seed, areas.tolist())
            # the square stays in view: the border rows and columns of every copy are empty
            edge = warped[..., [0, -1], :].abs().sum() + warped[..., :, [0, -1]].abs().sum()
            assert float(edge) == 0.0
    # With the perspective part always on, every augmented copy is strictly smaller.
    aug = ExtendingAugmentations(num_copies=8, p=1.0, padding_mode="zeros")
    for seed in range(40):
        (warped,) = aug(square, generators=_gens(1, seed))
        assert float(warped[1:].sum(dim=(1, 2, 3)).max()) < area * 0.98
