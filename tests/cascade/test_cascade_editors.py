"""The other methods on cascades: base stage + SR, base-stage Blended, or a clear refusal."""

from __future__ import annotations

import pytest
import torch

from demo_world.demo_sr import build_demo_sr
from demo_world.tiny import build_tiny_model
from editing.editors.apply import apply_editor
from editing.editors.blended import BlendedEditor
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
