"""The other methods on cascades: base stage + SR, base-stage Blended, or a clear refusal."""

from __future__ import annotations

import pytest
import torch

from demo_world.demo_sr import build_demo_sr
from demo_world.tiny import build_tiny_model
from editing.diffusion.noise import seeded_generators
from editing.editors.apply import apply_editor
from editing.editors.blended import BlendedEditor, BlendedSampler
from editing.editors.direct_inversion import DirectInversionEditor
from editing.editors.null_text_p2p import NullTextP2PEditor
from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing.models.cascade import with_sr


def _inputs(image_path, resolution=16, **kw):
    return Inputs(image=load_image(image_path, resolution), **kw)


def test_direct_inversion_runs_on_the_base_stage_then_super_resolves(tiny_if, image_path):
    editor = DirectInversionEditor(num_inversion_steps=3, num_inference_steps=3)
    inputs = _inputs(image_path, target_prompt="a blue circle")
    results = apply_editor(editor, tiny_if, inputs)
    assert len(results) == 1 and results[0].image.shape == (3, 32, 32)
    assert (
        results[0].params["sr"] == "pretrained" and results[0].params["prompt"] == "a blue circle"
    )
    base = apply_editor(editor, with_sr(tiny_if, None), inputs)[0]
    assert base.image.shape == (3, 16, 16) and "sr" not in base.params


def test_prompt_to_prompt_is_refused_for_if_attention(tiny_if, image_path):
    editor = NullTextP2PEditor(inversion="ddim", num_inference_steps=3)
    inputs = _inputs(image_path, source_prompt="a red circle", target_prompt="a blue circle")
    with pytest.raises(
        UserInputError, match="not supported for base model 'tiny_if-seed0'.*AttnAddedKV"
    ):
        editor(tiny_if, inputs)


def test_prompt_to_prompt_on_a_plain_attention_cascade(image_path):
    base = build_tiny_model(latent=False, resolution=16)
    sr = build_demo_sr(base, resolution=32, block_out_channels=(8, 16), attention_levels=1)
    model = with_sr(base, sr.freeze())
    editor = NullTextP2PEditor(inversion="ddim", num_inference_steps=3)
    inputs = _inputs(image_path, source_prompt="a red circle", target_prompt="a blue circle")
    results = apply_editor(editor, model, inputs)
    assert [r.image.shape for r in results] == [(3, 32, 32)] * 2  # edit, reconstruction
    assert [r.params["prompt"] for r in results] == ["a blue circle", "a red circle"]


def test_pixel_blended_edits_the_base_stage(tiny_if, image_path):
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    inputs = _inputs(image_path, mask=mask, target_prompt="")
    editor = BlendedEditor(num_timesteps=6, skip_timesteps=2, num_candidates=1, batch_size=1)
    result = editor(tiny_if, inputs)[0]
    assert result.image.shape == (3, 16, 16)  # the mask and the result live at base resolution
    source = inputs.image.pixels[0]
    assert torch.equal(result.image[:, mask[0, 0] == 0], source[:, mask[0, 0] == 0])


def test_pixel_blended_samples_with_the_models_learned_variance(tiny_if):
    """`variance=learned` on IF's base stage (learned_range): the step's Sigma is improved DDPM's
    exp(f log beta_t + (1 - f) log beta~_t), f = (v + 1) / 2 from the UNet's variance channels,
    beta~ of the first step clipped to the second's; the guided mean moves by -Sigma g and the
    noise is scaled by sqrt(Sigma)."""
    from editing.diffusion.ddpm import make_ddpm_schedule, posterior_mean, posterior_variance

    model = tiny_if
    assert model.learned_variance
    schedule = make_ddpm_schedule(model.alphas_cumprod, 6)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    mask = torch.ones(1, 1, 16, 16)
    emb = model.encode_prompt([""])
    editor = BlendedEditor(num_timesteps=6, skip_timesteps=0, num_candidates=1)
    assert editor.variance == "learned"
    sampler = BlendedSampler(model, x0, mask, emb, schedule, editor, None, None)
    x_t = torch.randn(2, 3, 16, 16, generator=g)
    noise = torch.randn(2, 3, 16, 16, generator=g)
    grad = torch.randn(2, 3, 16, 16, generator=g)
    for i in (0, 3, 5):
        t, a_t, a_prev = schedule.level(i)
        with torch.no_grad():
            out = model.unet(
                x_t, t.expand(2), encoder_hidden_states=emb.expand(2, -1, -1), return_dict=False
            )[0]
        eps, v = out[:, :3].float(), out[:, 3:].double()
        beta = 1.0 - a_t / a_prev
        beta_tilde = posterior_variance(*schedule.level(max(i, 1))[1:])  # clipped at step 0
        f = (v + 1) / 2
        expected = torch.exp(f * torch.log(beta) + (1 - f) * torch.log(beta_tilde))
        prediction = sampler.guidance(x_t, i, seeded_generators([0, 1]))
        assert torch.equal(prediction[3], out[:, 3:].float())
        torch.testing.assert_close(sampler.variance(i, prediction[3]), expected, rtol=1e-12, atol=0)
        eps_, x0_hat, _, v_ = prediction
        torch.testing.assert_close(eps_, eps, rtol=0, atol=0)
        mean = posterior_mean(x0_hat, x_t, float(a_t), float(a_prev)) - expected * grad
        step = sampler.foreground(x_t, i, (eps_, x0_hat, grad, v_), noise)
        want = mean if i == 0 else mean + expected.sqrt() * noise
        torch.testing.assert_close(step, want.float(), rtol=1e-6, atol=1e-6)
    # variance=small keeps the fixed posterior variance on the same model.
    small = BlendedSampler(
        model, x0, mask, emb, schedule, BlendedEditor(variance="small"), None, None
    )
    prediction = small.guidance(x_t, 3, seeded_generators([0, 1]))
    assert prediction[3] is None
    assert small.variance(3, None) == float(posterior_variance(*schedule.level(3)[1:]))


def test_learned_variance_falls_back_to_small_without_variance_channels(image_path):
    """A model without variance channels: `variance=learned` is fixed small, bit for bit."""
    from demo_world.tiny import build_tiny_model

    model = build_tiny_model(latent=False, resolution=16)
    assert not model.learned_variance
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    inputs = _inputs(image_path, mask=mask, target_prompt="")
    kwargs = {"num_timesteps": 6, "skip_timesteps": 2, "num_candidates": 2, "batch_size": 2}
    learned = BlendedEditor(variance="learned", **kwargs)(model, inputs)
    small = BlendedEditor(variance="small", **kwargs)(model, inputs)
    assert all(torch.equal(a.image, b.image) for a, b in zip(learned, small))
    assert learned[0].params["variance"] == "small"
