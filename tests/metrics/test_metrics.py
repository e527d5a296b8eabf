"""Metrics against hand-computed values; masked (PIE-Bench) variants; LPIPS and CLIP behaviour."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import editing.metrics as M
from editing.models.clip import ClipModel, build_clip

TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def structured(size: int = 64, seed: int = 0) -> torch.Tensor:
    """A natural-ish test image [1, 3, size, size] in [0, 1]: gradients, discs and a texture."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = 0.3 * torch.stack([xx, yy, 1 - xx])
    for _ in range(6):
        cx, cy, r = torch.rand(3, generator=g).tolist()
        disc = (((xx - cx) ** 2 + (yy - cy) ** 2).sqrt() < 0.05 + 0.2 * r).float()
        img = img * (1 - disc) + torch.rand(3, 1, 1, generator=g) * disc
    img = img + 0.1 * torch.sin(40 * xx) * torch.sin(25 * yy)
    return img.clamp(0, 1)[None]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = int(2 * math.ceil(3 * sigma) + 1)
    t = torch.arange(k, dtype=torch.float32) - k // 2
    w = torch.exp(-(t**2) / (2 * sigma**2))
    w = (w / w.sum()).repeat(3, 1, 1, 1)
    x = F.pad(x, (k // 2,) * 4, mode="reflect")
    x = F.conv2d(x, w.view(3, 1, 1, k), groups=3)
    return F.conv2d(x, w.view(3, 1, k, 1), groups=3)


def half_mask(size: int = 32) -> torch.Tensor:
    """[1, 1, size, size]: 1 (edited) in the left half."""
    mask = torch.zeros(1, 1, size, size)
    mask[..., : size // 2] = 1
    return mask


@pytest.fixture(scope="module")
def clip() -> ClipModel:
    torch.manual_seed(0)
    return build_clip(TINY_CFG).eval().requires_grad_(False)


# --- hand-computed fidelity values -------------------------------------------------------------


def test_constant_offset_gives_known_mse_and_psnr():
    x = torch.full((2, 3, 16, 16), 0.25)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01 -> PSNR 20 dB
    y[1] += 0.2  # MSE 0.04 -> PSNR 10 log10(25) dB
    torch.testing.assert_close(M.mse(x, y), torch.tensor([0.01, 0.04]))
    torch.testing.assert_close(M.psnr(x, y), torch.tensor([20.0, 10 * math.log10(25)]))
    assert M.psnr(x, x).tolist() == [math.inf, math.inf]


def test_ssim_is_one_for_equal_images_and_falls_with_noise():
    x = structured(32)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    values = [M.ssim(x, (x + s * noise).clamp(0, 1)).item() for s in (0.0, 0.05, 0.1, 0.2)]
    assert values[0] == pytest.approx(1.0, abs=1e-6)
    assert values == sorted(values, reverse=True) and values[-1] < 0.9


def test_metrics_are_per_image_and_batched():
    x = torch.cat([structured(32, seed=s) for s in range(3)])
    y = (x + 0.05).clamp(0, 1)
    for fn in (M.mse, M.psnr, M.ssim, M.lpips_distance):
        batched = fn(x, y)
        assert batched.shape == (3,) and batched.dtype == torch.float32
        singles = torch.cat([fn(x[i : i + 1], y[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(batched, singles, rtol=1e-5, atol=1e-6)


# --- masked variants (PIE-Bench) ---------------------------------------------------------------


def test_masked_psnr_and_mse_average_over_the_selected_pixels():
    x = torch.full((1, 3, 32, 32), 0.5)
    y = x.clone()
    y[..., :16] += 0.1  # inside (left half): MSE 0.01
    y[..., 16:] += 0.2  # outside: MSE 0.04
    mask = half_mask()
    assert M.masked_mse(x, y, mask, "inside").item() == pytest.approx(0.01, rel=1e-5)
    assert M.masked_psnr(x, y, mask, "inside").item() == pytest.approx(20.0, abs=1e-4)
    assert M.masked_psnr(x, y, mask, "outside").item() == pytest.approx(
        10 * math.log10(25), abs=1e-4
    )
    # PIE-Bench's reference: region zeroed in both, mean over the whole image (half of it here).
    assert M.masked_mse(x, y, mask, "outside", normalize="image").item() == pytest.approx(
        0.02, rel=1e-5
    )
    assert M.masked_psnr(x, y, mask, "outside", normalize="image").item() == pytest.approx(
        10 * math.log10(50), abs=1e-4
    )


@pytest.mark.parametrize("region", ["inside", "outside"])
def test_masked_metrics_ignore_the_other_region(region):
    x = torch.cat([structured(32, seed=1), structured(32, seed=2)])
    mask = half_mask()
    other = (1 - mask) if region == "inside" else mask
    g = torch.Generator().manual_seed(3)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    y_changed = y * (1 - other) + torch.rand(y.shape, generator=g) * other  # other region only
    for fn in (M.masked_mse, M.masked_psnr, M.masked_ssim, M.masked_lpips):
        a, b = fn(x, y, mask, region), fn(x, y_changed, mask, region)
        assert torch.equal(a, b), fn.__name__
    # ... while the metric of the region that changed does change.
    flipped = "outside" if region == "inside" else "inside"
    assert not torch.equal(
        M.masked_mse(x, y, mask, flipped), M.masked_mse(x, y_changed, mask, flipped)
    )


def test_masked_ssim_and_lpips_zero_the_other_region():
    x, y = structured(32, seed=4), structured(32, seed=5)
    mask = half_mask()
    torch.testing.assert_close(
        M.masked_ssim(x, y, mask, "outside"), M.ssim(x * (1 - mask), y * (1 - mask))
    )
    torch.testing.assert_close(
        M.masked_lpips(x, y, mask, "inside"), M.lpips_distance(x * mask, y * mask)
    )


def test_per_image_masks_and_empty_regions_give_nan():
    x = torch.full((2, 3, 32, 32), 0.5)
    y = x + 0.1
    mask = torch.cat([half_mask(), torch.ones(1, 1, 32, 32)])  # image 1: all edited
    out = M.masked_psnr(x, y, mask, "outside")
    assert out[0].item() == pytest.approx(20.0, abs=1e-4) and math.isnan(out[1].item())
    assert math.isnan(M.masked_ssim(x, y, mask, "outside")[1].item())
    assert M.masked_mse(x, y, mask.bool(), "inside").tolist() == pytest.approx([0.01, 0.01])


# --- LPIPS -------------------------------------------------------------------------------------


def test_lpips_of_an_image_with_itself_is_zero():
    x = torch.cat([structured(64, seed=s) for s in range(2)])
    assert M.lpips_distance(x, x).tolist() == [0.0, 0.0]


def test_lpips_grows_with_blur_strength():
    x = structured(64)
    values = [M.lpips_distance(x, gaussian_blur(x, s)).item() for s in (0.5, 1.0, 2.0, 3.0)]
    assert values == sorted(values) and values[0] > 0
    assert values[-1] > 5 * values[0]


def test_lpips_grows_with_noise_strength():
    x = structured(64)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    values = [
        M.lpips_distance(x, (x + s * noise).clamp(0, 1)).item() for s in (0.02, 0.05, 0.1, 0.2)
    ]
    assert values == sorted(values) and values[0] > 0
    # An ImageNet backbone puts the numbers in LPIPS' usual range (a random one gives ~10x less).
    assert 0.1 < values[2] < 0.5


def test_lpips_refuses_too_small_images():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="at least 31x31"):
        M.lpips_distance(x, x)


# --- CLIP scores -------------------------------------------------------------------------------


def test_clip_score_matches_its_definition_and_is_deterministic(clip):
    images = torch.cat([structured(32, seed=s) for s in range(3)])
    texts = ["a red circle", "a blue square", "a green triangle at the top"]
    score = M.clip_score(clip, images, texts)
    assert score.shape == (3,) and ((score >= 0) & (score <= 100)).all()
    cos = (clip.encode_image(images) * clip.encode_text(texts)).sum(-1)
    torch.testing.assert_close(score, 100 * cos.clamp(min=0))
    assert torch.equal(score, M.clip_score(clip, images, texts))
    one_text = M.clip_score(clip, images, "a red circle")
    assert one_text[0] == score[0]


def test_masked_clip_score_scores_the_masked_image(clip):
    images = torch.cat([structured(32, seed=s) for s in range(2)])
    mask = half_mask()
    expected = M.clip_score(clip, images * mask, "a red circle")
    assert torch.equal(M.masked_clip_score(clip, images, "a red circle", mask), expected)
    empty = torch.zeros(1, 1, 32, 32)
    assert M.masked_clip_score(clip, images, "a red circle", empty).isnan().all()


def test_clip_image_and_directional_similarity(clip):
    a, b = structured(32, seed=0), structured(32, seed=1)
    assert M.clip_image_similarity(clip, a, a).item() == pytest.approx(1.0, abs=1e-5)
    assert -1 <= M.clip_image_similarity(clip, a, b).item() < 1
    d = M.clip_directional_similarity(clip, a, b, "a red circle", "a blue circle")
    assert d.shape == (1,) and -1 <= d.item() <= 1


# --- input checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(3, 32, 32), r"\[B, 3, H, W\]"),
        (torch.rand(1, 1, 32, 32), r"\[B, 3, H, W\]"),
        (torch.rand(1, 3, 32, 32) * 2 - 1, r"\[0, 1\].*\(x \+ 1\) / 2"),
        (torch.full((1, 3, 32, 32), float("nan")), r"\[0, 1\]"),
        (torch.randint(0, 255, (1, 3, 32, 32)), "floating point"),
    ],
)
def test_bad_images_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        M.psnr(bad, bad)


def test_bad_pairs_and_masks_are_refused(clip):
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="shapes differ"):
        M.mse(x, x[:1])
    with pytest.raises(ValueError, match="0 or 1"):
        M.masked_psnr(x, x, torch.full((1, 1, 32, 32), 0.5))
    with pytest.raises(ValueError, match="does not fit"):
        M.masked_psnr(x, x, torch.ones(1, 1, 16, 16))
    with pytest.raises(ValueError, match="does not fit"):
        M.masked_psnr(x, x, torch.ones(3, 1, 32, 32))
    with pytest.raises(ValueError, match="region must be"):
        M.masked_psnr(x, x, half_mask(), region="background")
    with pytest.raises(ValueError, match="2 texts for 3 images|texts for"):
        M.clip_score(clip, torch.rand(3, 3, 32, 32), ["a", "b"])


@pytest.mark.gpu
def test_metrics_run_on_the_inputs_device(clip):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x, y = structured(64, seed=0), structured(64, seed=1)
    mask = half_mask(64)
    for fn in (M.mse, M.psnr, M.ssim, M.lpips_distance):
        on_gpu = fn(x.cuda(), y.cuda())
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), fn(x, y), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        M.masked_lpips(x.cuda(), y.cuda(), mask.cuda()).cpu(),
        M.masked_lpips(x, y, mask),
        rtol=1e-4,
        atol=1e-5,
    )
    gpu_clip = build_clip(TINY_CFG, device="cuda").eval()
    gpu_clip.load_state_dict(clip.state_dict())
    torch.testing.assert_close(
        M.clip_score(gpu_clip, x.cuda(), "a red circle").cpu(),
        M.clip_score(clip, x, "a red circle"),
        rtol=1e-3,
        atol=1e-3,
    )
