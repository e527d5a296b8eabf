"""The SR stage of a pixel cascade: IF's conditioning, learned variance, sampling, loading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from demo_world.tiny_if import build_tiny_if
from editing.diffusion.objectives import denoising_loss
from editing.diffusion.sampling import sample
from editing.errors import UserInputError
from editing.models.cascade import super_resolve, upscale_output
from editing.models.loading import load_model, save_model, save_sr_model


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _bound(sr, batch=2, seed=0):
    low = _randn(batch, 3, 16, 16, seed=seed).clamp(-1, 1)
    levels = torch.tensor([10, 600])[:batch]
    image, level = sr.condition(low, _randn(batch, *sr.latent_shape, seed=seed + 1), levels)
    return sr.bind(image, level)


@pytest.fixture
def garbage_variance():
    """Fill the variance half (channels C..2C) of a UNet's output with large noise."""

    def install(unet, channels: int = 3):
        def hook(module, args, output):
            out = output[0] if isinstance(output, tuple) else output.sample
            out[:, channels:] = 1e3 * torch.randn_like(out[:, channels:])
            return output

        return unet.register_forward_hook(hook)

    return install


def test_sr_conditioning_is_the_if_pipelines(tiny_if):
    """IFSuperResolutionPipeline: bilinear (align_corners) upsampling, the image-noising scheduler's
    add_noise at the noise level, concat([x_t, upscaled]), class_labels = noise level."""
    sr = tiny_if.sr
    low, aug = _randn(2, 3, 16, 16).clamp(-1, 1), _randn(2, 3, 32, 32, seed=1)
    level = torch.tensor([250, 40])
    image, got_level = sr.condition(low, aug, level)
    upscaled = F.interpolate(low, (32, 32), mode="bilinear", align_corners=True)
    want = sr.noise_scheduler.add_noise(upscaled, aug, level)
    torch.testing.assert_close(image, want, rtol=1e-5, atol=1e-6)
    x_t, emb = _randn(2, 3, 32, 32, seed=2), tiny_if.encode_prompt(["a red circle", "a cat"])
    with torch.no_grad():
        raw = sr.unet(torch.cat([x_t, want], 1), 500, encoder_hidden_states=emb, class_labels=level)
    got = sr.bind(image, got_level).predict(x_t, 500, emb)
    torch.testing.assert_close(got, raw.sample[:, :3], rtol=1e-5, atol=1e-5)


def test_guidance_batches_repeat_the_condition(tiny_if):
    bound = _bound(tiny_if.sr)
    x, emb = _randn(2, 3, 32, 32, seed=3), tiny_if.encode_prompt(["a red circle", ""])
    single = bound.predict(x, 300, emb)
    double = bound.predict(torch.cat([x, x]), 300, torch.cat([emb, emb]))
    torch.testing.assert_close(double, torch.cat([single, single]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stage", ["base", "sr"])
def test_variance_half_never_reaches_ddim_or_the_loss(tiny_if, garbage_variance, stage):
    model = tiny_if if stage == "base" else _bound(tiny_if.sr)
    assert model.learned_variance and model.unet.config.out_channels == 6
    shape = (2, *model.latent_shape)
    x, noise, x0 = _randn(*shape, seed=4), _randn(*shape, seed=5), _randn(*shape, seed=6)
    emb, uncond = tiny_if.encode_prompt(["a red circle", "a cat"]), tiny_if.encode_prompt([""])
    t = torch.tensor([100, 800])

    def run():
        return (
            model.eps(x, t, emb),
            sample(model, emb, x, 3, 4.0, uncond),
            denoising_loss(model, x0, emb, t, noise),
        )

    with torch.no_grad():
        clean = run()
        handle = garbage_variance(model.unet)
        try:
            dirty = run()
        finally:
            handle.remove()
    for a, b in zip(clean, dirty):
        assert torch.equal(a, b)
    # ... and the loss sends no gradient into the variance half of the output layer.
    model.unet.conv_out.weight.requires_grad_(True)
    try:
        denoising_loss(model, x0, emb, t, noise).backward()
        grad = model.unet.conv_out.weight.grad
        assert grad[3:].abs().max() == 0 and grad[:3].abs().max() > 0
    finally:
        model.unet.conv_out.weight.grad = None
        model.unet.conv_out.weight.requires_grad_(False)


def test_super_resolution_repeats_per_seed_whatever_the_batch(tiny_if):
    low = _randn(3, 3, 16, 16).clamp(-1, 1)
    cond, uncond = tiny_if.encode_prompt(["a red circle"]), tiny_if.encode_prompt([""])
    batch = super_resolve(tiny_if.sr, low, cond, uncond, [0, 1, 2], 3, 4.0)
    alone = super_resolve(tiny_if.sr, low[1:2], cond, uncond, [1], 3, 4.0)
    assert batch.shape == (3, 3, 32, 32) and batch.abs().max() <= 1
    torch.testing.assert_close(batch[1:2], alone, rtol=1e-4, atol=1e-5)
    assert not torch.equal(batch[0], batch[2])


def test_sr_none_is_bicubic_upsampling():
    x = _randn(1, 3, 16, 16).clamp(-1, 1)
    want = F.interpolate(x, (32, 32), mode="bicubic", align_corners=False).clamp(-1, 1)
    assert torch.equal(upscale_output(x, 32), want)


def test_cascade_round_trip_through_the_loading_path(tiny_if, tmp_path):
    save_model(tiny_if, tmp_path / "base")
    save_sr_model(tiny_if.sr, tmp_path / "sr")
    base, sr = str(tmp_path / "base"), str(tmp_path / "sr")
    loaded = load_model(base, name=tiny_if.name, sr_path=sr, sr_name=tiny_if.sr.name)
    assert type(loaded.tokenizer).__name__ == "T5Tokenizer" and loaded.text_attention_mask
    assert loaded.identity == tiny_if.identity and loaded.sr.identity == tiny_if.sr.identity
    assert loaded.sr.noise_level == tiny_if.sr.noise_level == 250
    emb = tiny_if.encode_prompt(["a red circle"])
    torch.testing.assert_close(loaded.encode_prompt(["a red circle"]), emb, rtol=0, atol=0)
    # Same weights; a loaded (memory-mapped) tensor may take another BLAS path: ~1 ulp apart.
    x, close = _randn(1, 3, 16, 16), {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(loaded.eps(x, 500, emb), tiny_if.eps(x, 500, emb), **close)
    a, b = _bound(loaded.sr, 1), _bound(tiny_if.sr, 1)
    y = _randn(1, 3, 32, 32, seed=7)
    torch.testing.assert_close(a.eps(y, 500, emb), b.eps(y, 500, emb), **close)
    base_only = load_model(str(tmp_path / "base"), sr_noise_level=3)
    assert base_only.sr is None


def test_an_sr_stage_for_another_text_encoder_is_refused(tiny_if, tmp_path):
    other = build_tiny_if(text_dim=16)
    save_sr_model(other.sr, tmp_path / "sr")
    save_model(tiny_if, tmp_path / "base")
    with pytest.raises(UserInputError, match="text embeddings of width 16.*gives 32"):
        load_model(str(tmp_path / "base"), sr_path=str(tmp_path / "sr"))


def test_noise_level_outside_the_schedule_is_refused(tiny_if):
    with pytest.raises(UserInputError, match="SR noise level 1000"):
        tiny_if.sr.check_level(1000)
