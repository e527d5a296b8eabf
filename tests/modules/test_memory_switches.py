"""Memory switches change memory, not results: gradient checkpointing gives the fp32 gradients
of the plain backward pass, and the Adafactor option trains."""

from __future__ import annotations

import pytest
import torch
from test_training_precision import _fit, _stage

from demo_world.tiny import build_tiny_model


def _step(kind: str, checkpointing: bool, out, optimizer: str = "adam"):
    """(change of the trained tensors after one step, elements the autograd graph saved for the
    backward pass during the fit, the stage)."""
    model = build_tiny_model()
    extra = {"num_inner_steps": 1} if kind.startswith("null") else {"num_steps": 1}
    if not kind.startswith("null"):
        extra["optimizer"] = optimizer
    stage = _stage(kind, model, out, gradient_checkpointing=checkpointing, **extra)
    names = [n for n, p in stage.named_parameters() if p.requires_grad]
    before = {n: p.detach().clone() for n, p in stage.named_parameters() if n in names}
    saved = [0]

    def pack(tensor):
        saved[0] += tensor.numel()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        _fit(stage, model, 1, "32-true")
    params = dict(stage.named_parameters())
    delta = torch.cat([(params[n].detach() - before[n]).flatten() for n in names])
    return delta, saved[0], stage


@pytest.mark.parametrize("kind", ["embed", "finetune-full", "finetune-lora", "null-per_step"])
def test_gradient_checkpointing_gives_the_same_step(kind, tmp_path):
    plain, plain_saved, _ = _step(kind, False, tmp_path / "plain")
    ckpt, ckpt_saved, stage = _step(kind, True, tmp_path / "ckpt")
    # The switch took effect: the UNet blocks kept only their inputs (5x fewer saved elements
    # on the tiny UNet), their activations were recomputed in the backward pass.
    assert ckpt_saved < 0.5 * plain_saved, (ckpt_saved, plain_saved)
    # Same ops on the same inputs: the recomputed forward is bit-identical on CPU, so the step
    # is too (a tolerance of 1e-6 relative leaves room for other kernels' reduction orders).
    torch.testing.assert_close(ckpt, plain, rtol=1e-6, atol=1e-12)
    assert not stage.model.unet.is_gradient_checkpointing, "switched off after the fit"


def test_adafactor_fine_tune_lowers_the_loss(tmp_path):
    from test_training_precision import _eval_loss

    model = build_tiny_model()
    stage = _stage("finetune-full", model, tmp_path, num_steps=40, lr=1e-4, optimizer="adafactor")
    start = _eval_loss(stage)
    _fit(stage, model, 40, "32-true")
    assert type(stage.trainer.optimizers[0]).__name__ == "Adafactor"
    assert _eval_loss(stage) < 0.9 * start


def test_adam8bit_without_bitsandbytes_is_one_line():
    import importlib.util

    from editing.errors import UserInputError
    from lightning_modules.base import make_optimizer

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed")
    with pytest.raises(UserInputError, match="pip install bitsandbytes") as err:
        make_optimizer("adam8bit", [torch.nn.Parameter(torch.zeros(2))], 1e-3)
    assert "\n" not in str(err.value)


def test_vae_tiling_decodes_a_large_latent_in_tiles():
    from editing.models.loading import set_vae_tiling

    plain = build_tiny_model()
    tiled = build_tiny_model(vae_tiling=True)
    assert tiled.vae.use_tiling and tiled.vae.use_slicing and not plain.vae.use_tiling
    g = torch.Generator().manual_seed(0)
    small, large = torch.randn(2, 4, 8, 8, generator=g), torch.randn(1, 4, 24, 24, generator=g)
    with torch.no_grad():
        # Up to one tile (32 px) nothing changes; slicing decodes the batch image by image.
        torch.testing.assert_close(tiled.decode(small), plain.decode(small), rtol=0, atol=1e-5)
        # A 96 px image goes through in overlapping tiles (each with its own normalisation
        # statistics, so it is not the untiled result; on a random VAE not even close).
        out = tiled.decode(large)
    assert out.shape == (1, 3, 96, 96) and torch.isfinite(out).all()
    assert not set_vae_tiling(tiled, False).vae.use_tiling
