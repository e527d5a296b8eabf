"""Min-SNR-gamma weights and their floor, in the x0 terms the docstring states."""

from __future__ import annotations

import pytest
import torch

from editing.diffusion.objectives import min_snr_weight

A_T = torch.tensor([0.9999, 0.9, 0.5, 0.05, 4e-5])  # SNR about 1e4, 9, 1, 0.053, 4e-5
SNR = A_T / (1 - A_T)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_the_x0_weight_is_min_snr_gamma(prediction_type):
    w = min_snr_weight(A_T, 5.0, prediction_type)
    # The target's own loss weighs the x0 error by SNR (eps) or SNR + 1 (v).
    per_x0 = SNR if prediction_type == "epsilon" else SNR + 1
    torch.testing.assert_close(w * per_x0, torch.clamp(SNR, max=5.0))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_the_floor_lifts_the_high_noise_steps_only(prediction_type):
    plain = min_snr_weight(A_T, 5.0, prediction_type)
    floored = min_snr_weight(A_T, 5.0, prediction_type, floor=1.0)
    per_x0 = SNR if prediction_type == "epsilon" else SNR + 1
    torch.testing.assert_close(floored * per_x0, SNR.clamp(min=1.0, max=5.0))
    high_snr = SNR >= 1.0
    torch.testing.assert_close(floored[high_snr], plain[high_snr])
    assert (floored[~high_snr] > plain[~high_snr]).all()
    # Near t = T the v loss then has weight 1 / (SNR + 1), about 1; min-SNR alone about 4e-5.
    if prediction_type == "v_prediction":
        assert floored[-1] == pytest.approx(1.0, rel=1e-3)
        assert plain[-1] == pytest.approx(4e-5, rel=1e-2)
