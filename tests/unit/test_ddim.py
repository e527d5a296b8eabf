"""Exact properties of the DDIM maths (editing/diffusion/ddim.py)."""

from __future__ import annotations

import torch

from demo_world.tiny import sd_scheduler
from editing.diffusion.ddim import (
    add_noise,
    ddim_invert,
    ddim_step,
    eps_from_v,
    make_schedule,
    predict_x0,
    v_target,
)
from editing.diffusion.denoise import ddim_sample


def test_step_then_inverse_step_is_identity():
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    a_t, a_s = torch.tensor(0.3), torch.tensor(0.7)
    x_s = ddim_step(x_t, eps, a_t, a_s)
    back = ddim_step(x_s, eps, a_s, a_t)
    torch.testing.assert_close(back, x_t, rtol=0, atol=1e-6)


def test_step_preserves_x0_prediction_and_noise():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 3, 4, 4, generator=g)
    eps = torch.randn(1, 3, 4, 4, generator=g)
    x_t = add_noise(x0, eps, 0.2)
    torch.testing.assert_close(predict_x0(x_t, eps, 0.2), x0, rtol=1e-5, atol=1e-5)
    # one DDIM step with the true eps lands exactly on q(x_s | x0) with the same eps
    torch.testing.assert_close(
        ddim_step(x_t, eps, 0.2, 0.9), add_noise(x0, eps, 0.9), rtol=1e-5, atol=1e-5
    )


def test_v_prediction_round_trip():
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    a = torch.tensor([0.1, 0.8])
    x_t = add_noise(x0, eps, a)
    v = v_target(x0, eps, a)
    torch.testing.assert_close(eps_from_v(v, x_t, a), eps, rtol=1e-5, atol=1e-5)


def test_schedule_levels_are_aligned():
    scheduler = sd_scheduler()
    s = make_schedule(scheduler, 50)
    assert s.timesteps.tolist()[:3] == [981, 961, 941] and s.timesteps[-1] == 1
    # sampling step i ends at the level sampling step i + 1 starts from
    torch.testing.assert_close(s.alphas_prev[:-1], s.alphas[1:])
    # the last level is the "final alpha": alphas_cumprod[0] when set_alpha_to_one=False
    assert s.alphas_prev[-1] == scheduler.alphas_cumprod[0]
    # inversion visits the same (from, to, t) triples in reverse
    inv = list(s.inversion())
    samp = list(s.sampling())
    assert [i for i, *_ in inv] == list(reversed(range(50)))
    for (i, t, a_from, a_to), (j, t2, a_t, a_prev) in zip(inv, reversed(samp)):
        assert i == j and t == t2 and a_from == a_prev and a_to == a_t


def test_inversion_then_sampling_is_exact_when_eps_ignores_x():
    # With an eps that depends only on t, the DDIM map is exactly invertible: the only error of
    # real inversion is eps(x_{t-1}, t) != eps(x_t, t), never the timestep bookkeeping.
    g = torch.Generator().manual_seed(3)
    table = {int(t): torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64) for t in range(1000)}

    def eps_fn(x, t):
        return table[int(t)]

    s = make_schedule(sd_scheduler(), 20)
    z0 = torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64)
    inv = ddim_invert(z0, eps_fn, s)
    assert inv.latents.shape == (21, 1, 4, 8, 8) and inv.eps.shape == (20, 1, 4, 8, 8)
    torch.testing.assert_close(ddim_sample(inv.x_T, eps_fn, s), z0, rtol=0, atol=1e-9)
    # eps[i] is the prediction used at sampling step i (timesteps[i])
    for i, t in enumerate(s.timesteps):
        torch.testing.assert_close(inv.eps[i], table[int(t)])
    # target(i) is where sampling step i should land
    x = inv.x_T
    for i, t, a_t, a_prev in s.sampling():
        x = ddim_step(x, table[int(t)], a_t, a_prev)
        torch.testing.assert_close(x, inv.target(i), rtol=0, atol=1e-9)


def test_real_unet_inversion_error_shrinks_with_more_steps(tiny_model):
    # With a real (random) UNet, inversion is approximate (eps(x_{t-1}, t) != eps(x_t, t)); the
    # error must vanish as the step size shrinks. An off-by-one in the timestep alignment would
    # leave an error that does not shrink.
    m = tiny_model
    emb = m.encode_prompt(["a red circle"])
    z0 = torch.randn(1, *m.latent_shape, generator=torch.Generator().manual_seed(4)) * 0.5

    def eps_fn(x, t):
        return m.eps(x, t, emb)

    errors = []
    for n in (10, 40, 160):
        s = make_schedule(m.scheduler, n)
        rec = ddim_sample(ddim_invert(z0, eps_fn, s).x_T, eps_fn, s)
        errors.append(float((rec - z0).abs().mean() / z0.abs().mean()))
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.5 * errors[0], errors


def test_sample_with_clip_x0_keeps_predictions_in_range(monkeypatch):
    # Every DDIM step's implied x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t) lies in [-1, 1] with
    # clip_x0; a random tiny pixel model's raw predictions do not.
    import editing.diffusion.denoise as denoise
    from demo_world.tiny import build_tiny_model
    from editing.diffusion.noise import initial_noise
    from editing.diffusion.sampling import sample

    seen: list[float] = []
    real_step = denoise.ddim_step

    def recording_step(x, eps, a_t, a_prev):
        seen.append(float(((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).abs().max()))
        return real_step(x, eps, a_t, a_prev)

    monkeypatch.setattr(denoise, "ddim_step", recording_step)
    model = build_tiny_model(latent=False)
    cond = model.encode_prompt(["a red square"])
    x_T = initial_noise([0], model.latent_shape, "cpu")
    sample(model, cond, x_T, 5, 3.0)
    assert max(seen) > 1.5
    seen.clear()
    sample(model, cond, x_T, 5, 3.0, clip_x0=True)
    assert len(seen) == 5 and max(seen) <= 1.0 + 1e-4
