"""Diffusion models and the networks the methods use: the DiffusionModel wrapper, loading, cascades, fine-tuned UNet weights, CLIP and LPIPS."""
