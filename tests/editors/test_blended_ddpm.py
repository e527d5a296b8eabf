"""DDPM respacing and posterior (editing/diffusion/ddpm.py): exact against the definitions and diffusers."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from editing.diffusion.ddpm import (
    ddpm_sample,
    make_ddpm_schedule,
    model_variance,
    posterior_mean,
    posterior_variance,
    respace,
    space_timesteps,
)


def _ddpm_scheduler() -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        clip_sample=False,
        variance_type="fixed_small",
    )


def test_space_timesteps_matches_guided_diffusion():
    steps = space_timesteps(1000, 100)
    assert steps.shape == (100,) and steps.dtype == torch.int64
    # guided-diffusion's space_timesteps(1000, [100]): stride 999/99, accumulated and rounded.
    assert steps[:8].tolist() == [0, 10, 20, 30, 40, 50, 61, 71]
    assert steps[-1].item() == 999 and bool((steps[1:] > steps[:-1]).all())
    assert space_timesteps(1000, 1000).tolist() == list(range(1000))
    assert space_timesteps(1000, 1).tolist() == [0]
    with pytest.raises(ValueError):
        space_timesteps(1000, 1001)


def test_respaced_alphas_cumprod_equal_the_originals_at_kept_timesteps():
    a = _ddpm_scheduler().alphas_cumprod
    schedule = make_ddpm_schedule(a, 100)
    kept = schedule.timesteps
    assert torch.equal(schedule.alphas_cumprod, a.double()[kept])
    assert schedule.alphas_cumprod_prev[0] == 1.0
    assert torch.equal(schedule.alphas_cumprod_prev[1:], schedule.alphas_cumprod[:-1])
    # The respaced betas generate the same alpha-bar: cumprod(1 - beta') = a at the kept steps.
    torch.testing.assert_close(
        torch.cumprod(1 - schedule.betas, 0), schedule.alphas_cumprod, rtol=1e-12, atol=0
    )
    # Without respacing, the betas are the training betas.
    full = respace(a, torch.arange(1000))
    betas = _ddpm_scheduler().betas.double()
    torch.testing.assert_close(full.betas, betas, rtol=0, atol=2e-7)  # float32 alpha-bar
    with pytest.raises(ValueError):
        respace(a, torch.tensor([5, 3]))


def test_posterior_variance_formula_on_one_step():
    a = _ddpm_scheduler().alphas_cumprod.double()
    schedule = make_ddpm_schedule(a, 100)
    t, a_t, a_prev = schedule.level(40)
    beta = 1 - a[t] / a[schedule.timesteps[39]]
    expected = (1 - a[schedule.timesteps[39]]) / (1 - a[t]) * beta
    assert posterior_variance(a_t, a_prev).item() == pytest.approx(expected.item(), rel=1e-12)
    assert model_variance(a_t, a_prev, "large").item() == pytest.approx(beta.item(), rel=1e-12)
    assert posterior_variance(schedule.alphas_cumprod[0], 1.0).item() == 0.0  # first step
    with pytest.raises(ValueError):
        model_variance(a_t, a_prev, "learned")


@pytest.mark.parametrize("i", [0, 1, 37, 99])
def test_respaced_posterior_step_matches_diffusers_custom_timesteps(i):
    """diffusers' DDPMScheduler with custom timesteps uses the respaced betas 1 - a_t / a_prev."""
    sched = _ddpm_scheduler()
    schedule = make_ddpm_schedule(sched.alphas_cumprod, 100)
    sched.set_timesteps(timesteps=schedule.timesteps.flip(0).tolist())
    g = torch.Generator().manual_seed(i)
    x_t, eps = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    t, a_t, a_prev = schedule.level(i)
    ref = sched.step(eps, int(t), x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    mean = posterior_mean(x0_hat, x_t, a_t, a_prev)
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7))
    ours = ddpm_sample(mean, posterior_variance(a_t, a_prev), noise, last=i == 0)
    torch.testing.assert_close(ours.float(), ref, rtol=1e-5, atol=1e-5)


def test_posterior_mean_at_the_first_step_is_x0():
    x0, x_t = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    assert torch.equal(posterior_mean(x0, x_t, torch.tensor(0.9999), 1.0), x0)
