"""Diffusion maths shared by every method: DDIM/DDPM steps and schedules, classifier-free guidance, the denoising loop, the training objective."""
