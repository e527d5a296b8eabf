"""Null-text inversion: the optimisation contract, the Lightning stage and the artifact."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_config, fit_stage
from torch import nn

from demo_world.tiny import build_tiny_model
from editing.diffusion.cfg import guided_eps
from editing.diffusion.ddim import ddim_step, make_schedule
from editing.diffusion.denoise import ddim_sample
from editing.errors import UserInputError
from editing.inversion.ddim_inversion import invert
from editing.inversion.null_text import NullTextSettings, null_text_inversion, optimize_step
from editing.io.artifacts import load_artifact
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from lightning_modules.null_text import NullTextStage

SOURCE = "a red circle"


def _z0(model, image_path):
    return model.encode_image(load_image(image_path, model.resolution).pixels)


def test_lr_schedule_and_early_stop_thresholds():
    s = NullTextSettings()
    assert s.lr_at(0) == 1e-2 and s.lr_at(49) == pytest.approx(1e-2 * 0.51)
    assert s.threshold(0) == 1e-5 and s.threshold(10) == pytest.approx(1e-5 + 10 * 2e-5)


def _step(model, z0, settings, i=3):
    schedule = make_schedule(model.scheduler, 10)
    cond = model.encode_prompt([SOURCE])
    inv = invert(model, z0, cond, schedule)
    null = nn.Parameter(model.encode_prompt([""]).clone())
    opt = torch.optim.Adam([null], lr=123.0)
    opt.state[null] = {"stale": torch.zeros(1)}  # must be cleared: a fresh Adam per step
    lrs = []
    original = opt.step

    def spy(*args, **kwargs):
        lrs.append(opt.param_groups[0]["lr"])
        return original(*args, **kwargs)

    opt.step = spy
    start = null.detach().clone()
    z_bar = inv.latents[len(schedule) - i]
    result = optimize_step(model, i, schedule, z_bar, inv.target(i), cond, null, opt, settings)
    return result, lrs, start, null


def test_inner_loop_uses_the_step_lr_and_stops_early(tiny_model, image_path):
    z0 = _z0(tiny_model, image_path)
    full, lrs, start, null = _step(
        tiny_model, z0, NullTextSettings(num_inner_steps=4, early_stop=False)
    )
    assert full.inner_steps == 4 and lrs == [pytest.approx(1e-2 * (1 - 3 / 100))] * 4
    assert not torch.equal(null.detach(), start)
    early, lrs, _, _ = _step(tiny_model, z0, NullTextSettings(num_inner_steps=4, epsilon=1e9))
    assert early.inner_steps == 1 and len(lrs) == 1  # loss < threshold after the first update
    none, lrs, start, null = _step(tiny_model, z0, NullTextSettings(num_inner_steps=0))
    assert none.inner_steps == 0 and not lrs and torch.equal(null.detach(), start)


def test_null_text_reconstructs_better_than_ddim_inversion_at_guidance_7_5(tiny_model, image_path):
    m = tiny_model
    z0 = _z0(m, image_path)
    n, w = 10, 7.5
    schedule = make_schedule(m.scheduler, n)
    cond, empty = m.encode_prompt([SOURCE]), m.encode_prompt([""])
    x_T = invert(m, z0, cond, schedule).x_T
    ddim_rec = ddim_sample(x_T, lambda x, t: guided_eps(m, x, t, cond, empty, w), schedule)
    result = null_text_inversion(
        m, z0, SOURCE, n, NullTextSettings(num_inner_steps=10, early_stop=False)
    )
    x = result.x_T
    with torch.no_grad():
        for i, t, a_t, a_prev in schedule.sampling():
            eps = guided_eps(m, x, t, cond, result.uncond[i : i + 1], w)
            x = ddim_step(x, eps, a_t, a_prev)
    err_ddim = float((ddim_rec - z0).pow(2).mean())
    err_null = float((x - z0).pow(2).mean())
    assert err_null < 0.5 * err_ddim, (err_null, err_ddim)


def _stage(model, image_path, out, **kwargs):
    inputs = Inputs(
        image=load_image(image_path, 32), source_prompt=SOURCE, output_dir=out, checkpoint_dir=out
    )
    return NullTextStage(model, inputs, num_inference_steps=4, num_inner_steps=3, **kwargs)


def test_stage_changes_only_the_null_embeddings(image_path, tmp_path):
    model = build_tiny_model()
    before = {
        n: {k: v.clone() for k, v in getattr(model, n).state_dict().items()}
        for n in ("unet", "vae", "text_encoder")
    }
    stage = _stage(model, image_path, tmp_path)
    fit_stage(stage, model, stage.inputs, steps=100)  # the 4-timestep stream bounds the run
    for name, state in before.items():
        after = getattr(model, name).state_dict()
        assert all(torch.equal(state[k], after[k]) for k in state), name
    tensors, meta = stage.artifact()
    assert (
        tensors["null_embeddings"].shape == (4, 77, 32)
        and tensors["null_embeddings"].dtype == torch.float32
    )
    assert all(
        1 <= k <= 3 for k in tensors["inner_steps"].tolist()
    )  # early stop may end a step sooner
    assert (
        meta["source_prompt"] == SOURCE
        and meta["num_inference_steps"] == "4"
        and meta["guidance_scale"] == "7.5"
    )
    # distinct per-step embeddings (per_step mode), all different from the "" embedding
    empty = model.encode_prompt([""])[0]
    assert not torch.equal(tensors["null_embeddings"][0], empty)
    assert not torch.equal(tensors["null_embeddings"][0], tensors["null_embeddings"][-1])


def _sample_with_null(model, z_T, cond, null, schedule, w=7.5):
    """The guided DDIM trajectory from z_T with one null embedding at every step (the stage's
    own order of UNet calls: eps_c, then eps_u)."""
    from editing.diffusion.cfg import classifier_free_guidance

    x = z_T
    with torch.no_grad():
        for _, t, a_t, a_prev in schedule.sampling():
            eps_c = model.eps(x, t, cond)
            eps_u = model.eps(x, t, null)
            x = ddim_step(x, classifier_free_guidance(eps_u, eps_c, w), a_t, a_prev)
    return x


def test_global_mode_stores_the_embedding_it_reports(image_path, tmp_path):
    """null_mode=global optimises one embedding jointly (num_inner_steps sweeps, one Adam step
    each, then an evaluation sweep): sampling with the stored embedding at every step gives
    exactly the stage's reported z_0 and final loss, and reconstructs better than ""."""
    model = build_tiny_model()
    stage = _stage(model, image_path, tmp_path, null_mode="global")
    assert stage.num_steps == 4 * 4  # (3 + 1) sweeps of the 4 timesteps
    fit_stage(stage, model, stage.inputs, steps=100)
    tensors, meta = stage.artifact()
    assert tensors["null_embeddings"].shape == (1, 77, 32) and meta["null_mode"] == "global"
    assert meta["steps_done"] == "4" and tensors["inner_steps"].tolist() == [3] * 4
    null = tensors["null_embeddings"]
    empty = model.encode_prompt([""])
    assert not torch.equal(null, empty)  # optimised
    assert all(torch.equal(stage.null_embeddings[i], null[0]) for i in range(4))
    schedule = make_schedule(model.scheduler, 4)
    cond = model.encode_prompt([SOURCE])
    z0 = _sample_with_null(model, tensors["z_T"], cond, null, schedule)
    assert torch.equal(z0, stage.z_bar)
    target = stage.pivot_latents[0]
    assert float(torch.nn.functional.mse_loss(z0, target)) == pytest.approx(
        float(tensors["losses"][-1]), rel=1e-6
    )
    plain = _sample_with_null(model, tensors["z_T"], cond, empty, schedule)
    assert float((z0 - target).pow(2).mean()) < float((plain - target).pow(2).mean())


def test_bf16_mixed_keeps_the_optimisation_fp32(image_path, tmp_path):
    model = build_tiny_model()
    stage = _stage(model, image_path, tmp_path)
    fit_stage(stage, model, stage.inputs, steps=100, precision="bf16-mixed")
    assert stage.null.dtype == torch.float32 and stage.null_embeddings.dtype == torch.float32
    assert torch.isfinite(stage.losses).all()


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """`pixels` in [-1, 1] through uint8 and back, as an artifact keeps an input image."""
    return ((pixels.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1.0


def test_train_then_edit_and_refusals(image_path, tmp_path):
    from editing_app.commands.edit import edit
    from editing_app.commands.train import train

    ckpt = tmp_path / "ckpt"
    common = ["base_model=tiny", "trainer=cpu", "logger=none", "callbacks=none"]
    train(
        compose_config(
            "train",
            [
                *common,
                "stage=null_text",
                f"image={image_path}",
                f"source_prompt={SOURCE}",
                f"output_dir={ckpt}",
                "stage.num_inference_steps=4",
                "stage.num_inner_steps=2",
            ],
        )
    )
    art = load_artifact(ckpt / "null_text.safetensors", "null_text")
    assert art["z_T"].shape == (1, 4, 8, 8) and art["timesteps"].tolist() == [751, 501, 251, 1]
    out = tmp_path / "out"
    edit(
        compose_config(
            "edit",
            [
                "base_model=tiny",
                "method=null_text_p2p",
                f"checkpoint_dir={ckpt}",
                f"output_dir={out}",
                "method.target_prompts=[a blue circle,a red square]",
            ],
        )
    )
    names = sorted(p.name for p in (out / "samples").iterdir())
    assert names == [
        "000_null_text_a_blue_circle.png",
        "001_null_text_a_red_square.png",
        "002_null_text_reconstruction.png",
    ]
    # no image= given: the grid's first cell is the input kept in the artifact, as trained on
    import numpy as np
    from PIL import Image

    from demo_world.tiny import build_tiny_model
    from editing.io.artifacts import stored_input_image
    from editing.io.geometry import SizeRule
    from editing.io.images import load_image, to_pil
    from editing.io.outputs import make_grid

    trained_on = load_image(image_path, SizeRule.for_model(build_tiny_model())).pixels[0]
    assert torch.equal(stored_input_image(ckpt / "null_text.safetensors"), to_unit(trained_on))
    grid = Image.open(out / "grid.png").convert("RGB")
    cell = make_grid([to_pil(trained_on)], ["input"])  # the grid's first cell, drawn alone
    first = np.asarray(grid.crop((0, 0, cell.width, cell.height - 20)))
    assert np.array_equal(first, np.asarray(cell)[: cell.height - 20])
    # an inversion made for another image / caption / model is refused, naming what differs
    other = tmp_path / "other.png"
    from PIL import Image

    Image.new("RGB", (32, 32), (0, 90, 0)).save(other)
    with pytest.raises(UserInputError, match="image_sha256"):
        edit(
            compose_config(
                "edit",
                [
                    "base_model=tiny",
                    "method=null_text_p2p",
                    f"checkpoint_dir={ckpt}",
                    f"output_dir={out}",
                    f"image={other}",
                    "target_prompt=a blue circle",
                ],
            )
        )
    with pytest.raises(UserInputError, match="source_prompt: artifact has 'a red circle'"):
        edit(
            compose_config(
                "edit",
                [
                    "base_model=tiny",
                    "method=null_text_p2p",
                    f"checkpoint_dir={ckpt}",
                    f"output_dir={out}",
                    "source_prompt=a cat",
                    "target_prompt=a dog",
                ],
            )
        )
    with pytest.raises(UserInputError, match="base model"):
        edit(
            compose_config(
                "edit",
                [
                    "base_model=tiny",
                    "base_model.seed=1",
                    "method=null_text_p2p",
                    f"checkpoint_dir={ckpt}",
                    f"output_dir={out}",
                    "target_prompt=a blue circle",
                ],
            )
        )
    with pytest.raises(UserInputError, match="token"):
        edit(
            compose_config(
                "edit",
                [
                    "base_model=tiny",
                    "method=null_text_p2p",
                    "method.edit=replace",
                    f"checkpoint_dir={ckpt}",
                    f"output_dir={tmp_path / 'o2'}",
                    "target_prompt=a big blue circle",
                ],
            )
        )
    assert not (tmp_path / "o2").exists()


def test_replace_with_the_source_prompt_reproduces_the_reconstruction(
    image_path, tmp_path, tiny_model
):
    from editing.editors.null_text_p2p import NullTextP2PEditor

    inputs = Inputs(image=load_image(image_path, 32), source_prompt=SOURCE, target_prompt=SOURCE)
    editor = NullTextP2PEditor(inversion="negative_prompt", num_inference_steps=5, blend_words=None)
    results = editor(tiny_model, inputs)
    assert [r.label for r in results] == [
        "negative_prompt: a red circle",
        "negative_prompt: reconstruction",
    ]
    torch.testing.assert_close(results[0].image, results[1].image, rtol=0, atol=1e-5)


@pytest.mark.parametrize("inversion", ["ddim", "negative_prompt"])
def test_optimisation_free_inversions_with_local_blend(image_path, tiny_v_model, inversion):
    from editing.editors.null_text_p2p import NullTextP2PEditor

    inputs = Inputs(
        image=load_image(image_path, 32), source_prompt=SOURCE, target_prompt="a blue circle"
    )
    editor = NullTextP2PEditor(
        inversion=inversion, num_inference_steps=4, blend_words="auto", blend_resolution=1.0
    )
    results = editor(tiny_v_model, inputs)
    assert len(results) == 2 and all(r.image.shape == (3, 32, 32) for r in results)
    assert all(torch.isfinite(r.image).all() for r in results)


def test_edit_null_empty_guides_only_the_edits_with_the_empty_embedding(
    image_path, tiny_model, monkeypatch
):
    """edit_null=empty: the edits' unconditional rows are the embedding of "" at every step, the
    source row keeps the inversion's (here negative-prompt: the source embedding); the source
    branch (the reconstruction) is bit-identical to edit_null=shared, the edit is not. For a
    ddim inversion (whose null is "") both settings are the same edit."""
    import editing.editors.null_text_p2p as p2p
    from editing.editors.null_text_p2p import NullTextP2PEditor

    inputs = Inputs(
        image=load_image(image_path, 32), source_prompt=SOURCE, target_prompt="a blue circle"
    )
    calls = []
    original = p2p.p2p_sample
    monkeypatch.setattr(p2p, "p2p_sample", lambda *a, **k: calls.append(k) or original(*a, **k))
    out = {}
    for inversion in ("negative_prompt", "ddim"):
        for edit_null in ("shared", "empty"):
            editor = NullTextP2PEditor(
                inversion=inversion, num_inference_steps=4, blend_words=None, edit_null=edit_null
            )
            results = editor(tiny_model, inputs)
            assert results[0].params["edit_null"] == edit_null
            out[inversion, edit_null] = [r.image for r in results]
    kwargs = [c["edit_uncond_embeddings"] for c in calls]
    assert len(kwargs) == 4 and kwargs[3] is not None
    assert kwargs[0] is None and kwargs[2] is None
    assert torch.equal(kwargs[1], tiny_model.encode_prompt([""]))
    edit_s, recon_s = out["negative_prompt", "shared"]
    edit_e, recon_e = out["negative_prompt", "empty"]
    assert torch.equal(recon_e, recon_s) and not torch.equal(edit_e, edit_s)
    for a, b in zip(out["ddim", "shared"], out["ddim", "empty"]):
        assert torch.equal(a, b)
    with pytest.raises(UserInputError, match="edit_null"):
        NullTextP2PEditor(edit_null="source")
