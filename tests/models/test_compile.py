"""`compile=true`: the compiled UNet gives the eager outputs (predictions, a Prompt-to-Prompt edit
with attention control, an Imagic embedding step), never changes the module, and deep copies run
their own weights.

The default tests compile with the "aot_eager" backend (Dynamo's tracing, graph breaks and guards,
run by eager kernels: no C++ kernels to build); the training step (AOTAutograd's backward graph)
and the inductor test, which generates C++ kernels (minutes on a loaded CPU), are marked slow. Tolerances: aot_eager 1e-5
absolute (the same kernels in another order of dispatch), inductor 1e-4 (fused kernels reorder
float sums).
"""

from __future__ import annotations

import copy

import pytest
import torch

from demo_world.tiny import build_tiny_model
from editing.attention import AttentionReplace
from editing.diffusion.ddim import make_schedule
from editing.editors.p2p_sampling import p2p_sample

SOURCE, EDIT = "a red cat on a table", "a blue cat on a table"


def _inputs(model, batch: int = 2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *model.latent_shape, generator=g)
    emb = torch.randn(batch, 77, model.text_encoder.config.hidden_size, generator=g)
    return x, emb


def test_compiled_predictions_equal_eager_and_a_copied_unet_runs_its_own_weights():
    model = build_tiny_model()
    x, emb = _inputs(model, 1)
    eager = model.predict(x, 500, emb)
    forward = model.unet.forward
    model.set_compile(True, "aot_eager")
    base = model.predict(x, 500, emb)
    torch.testing.assert_close(base, eager, atol=1e-5, rtol=0)
    # The module is not compiled in place (a deep copy would call the original's weights).
    assert model.unet_callable() is not model.unet and model.unet.forward == forward
    assert getattr(model.unet, "_compiled_call_impl", None) is None
    tuned_unet = copy.deepcopy(model.unet)
    with torch.no_grad():
        tuned_unet.conv_out.bias.add_(1.0)
    tuned = model.with_unet(tuned_unet)
    assert tuned.compile_unet and tuned.compile_backend == "aot_eager"
    torch.testing.assert_close(tuned.predict(x, 500, emb), base + 1.0, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.predict(x, 500, emb), base, atol=0, rtol=0)


def _p2p_edit(model):
    prompts = [SOURCE, EDIT]
    controller = AttentionReplace(
        prompts, model.tokenizer, cross_replace_steps=0.8, self_replace_steps=0.4
    )
    x_T = torch.randn(1, *model.latent_shape, generator=torch.Generator().manual_seed(0))
    return p2p_sample(model, x_T, prompts, controller, make_schedule(model.scheduler, 4), 7.5)


def test_a_compiled_prompt_to_prompt_edit_equals_the_eager_one():
    model = build_tiny_model()
    eager = _p2p_edit(model)
    compiled = _p2p_edit(model.set_compile(True, "aot_eager"))
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=0)
    # The controlled layers really edited: the edit branch differs from the source.
    assert (compiled[1] - compiled[0]).abs().max() > 1e-3


@pytest.mark.slow
def test_a_compiled_imagic_embedding_step_equals_the_eager_one(image_path):
    from helpers import fit_stage

    from editing.io.edit_inputs import Inputs
    from editing.io.images import load_image
    from lightning_modules.imagic import ImagicEmbedStage

    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = build_tiny_model().set_compile(compiled, "aot_eager")
        inputs = Inputs(image=load_image(image_path, 32), target_prompt="a cat")
        stage = ImagicEmbedStage(model, inputs, num_steps=2, lr=1e-2)
        fit_stage(stage, model, inputs, 2)
        results.append(stage.e_opt.detach().clone())
        assert not torch.equal(stage.e_opt, stage.e_tgt)  # two Adam steps moved e_opt
    torch.testing.assert_close(results[1], results[0], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_inductor_compiled_edit_equals_the_eager_one():
    model = build_tiny_model()
    eager = _p2p_edit(model)
    compiled = _p2p_edit(model.set_compile(True, "inductor"))
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=0)
