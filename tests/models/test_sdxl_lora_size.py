"""The sizes behind Imagic's LoRA default on SDXL (README, SDXL): SDXL 1.0 base's UNet built from
its published architecture on the meta device (shapes only, no weights, no memory), its parameter
count, the memory of a full fine-tune with Adam and the share of weights a LoRA fine-tune trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from editing.models.unet_weights import DEFAULT_LORA_TARGETS


def sdxl_base_unet() -> nn.Module:
    """SDXL 1.0 base's UNet architecture (its unet/config.json), on the meta device."""
    from benchmarks.architectures import sdxl_unet

    with torch.device("meta"):
        return sdxl_unet()


def lora_parameters(unet: nn.Module, rank: int, targets=DEFAULT_LORA_TARGETS) -> int:
    """Trainable parameters of rank-`rank` adapters A [r, in], B [out, r] on every targeted linear."""
    return sum(
        rank * (m.in_features + m.out_features)
        for name, m in unet.named_modules()
        if isinstance(m, nn.Linear) and name.endswith(tuple(targets))
    )


@pytest.mark.slow  # building 2.6B parameters' modules takes ~15 s of CPU even on the meta device
def test_full_fine_tune_memory_and_lora_share_on_sdxl():
    unet = sdxl_base_unet()
    n = sum(p.numel() for p in unet.parameters())
    assert n == 2_567_463_684  # "2.6B"
    # fp32 weights + gradients + Adam's two moments: 16 bytes a parameter, before activations.
    assert 41.0e9 < 16 * n < 41.1e9
    shares = {r: lora_parameters(unet, r) / n for r in (4, 8, 64)}
    assert lora_parameters(unet, 4) == 5_806_080
    assert 0.0022 < shares[4] < 0.0023 and 0.0045 < shares[8] < 0.0046
    assert 0.036 < shares[64] < 0.037
