"""The shipped demo model is a plain diffusers/transformers folder.

It loads with `UNet2DConditionModel`, `CLIPTextModel`, `CLIPTokenizer` and `DDIMScheduler` alone,
and a textbook classifier-free-guidance DDIM loop written here with the scheduler's own `step`
(no project code) gives the same samples as the project's sampler from the same x_T.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from demo_world.demo_model import DEMO_MODEL_DIR, load_demo_model
from editing.diffusion.sampling import sample

PROMPTS = [
    "a large red circle in the center on a gray background",
    "a small blue square at the top left on a white background",
]
STEPS = 10
GUIDANCE = 5.0


@torch.no_grad()
def plain_diffusers_samples(x_T: torch.Tensor) -> torch.Tensor:
    unet = UNet2DConditionModel.from_pretrained(DEMO_MODEL_DIR / "unet").eval()
    text_encoder = CLIPTextModel.from_pretrained(DEMO_MODEL_DIR / "text_encoder").eval()
    tokenizer = CLIPTokenizer.from_pretrained(DEMO_MODEL_DIR / "tokenizer")
    scheduler = DDIMScheduler.from_pretrained(DEMO_MODEL_DIR / "scheduler")

    def embed(texts: list[str]) -> torch.Tensor:
        ids = tokenizer(
            texts, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
        ).input_ids
        return text_encoder(ids)[0]

    cond, uncond = embed(PROMPTS), embed([""] * len(PROMPTS))
    scheduler.set_timesteps(STEPS)
    x = x_T.clone()
    for t in scheduler.timesteps:
        eps_u, eps_c = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond]))[
            0
        ].chunk(2)
        x = scheduler.step(eps_u + GUIDANCE * (eps_c - eps_u), t, x, eta=0.0).prev_sample
    return x


def test_plain_diffusers_loop_matches_the_project_sampler():
    x_T = torch.randn(len(PROMPTS), 3, 32, 32, generator=torch.Generator().manual_seed(0))
    reference = plain_diffusers_samples(x_T)

    model = load_demo_model()
    ours = sample(model, model.encode_prompt(PROMPTS), x_T.clone(), STEPS, GUIDANCE)

    assert ours.shape == reference.shape == (2, 3, 32, 32)
    assert (reference - x_T).abs().mean() > 0.1  # the loop did denoise
    torch.testing.assert_close(ours, reference, atol=2e-4, rtol=0)
