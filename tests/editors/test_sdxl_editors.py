"""Direct Inversion and Blended Latent Diffusion on SDXL (`base_model=tiny_sdxl`): the exact
properties of the SD tests at a non-square working size, edit.py end to end, the artifacts'
SDXL conditioning facts and the refusals across model families."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import compose_config
from PIL import Image

from editing.diffusion.conditioning import Conditioning
from editing.diffusion.ddim import make_schedule
from editing.editors.apply import apply_editor
from editing.editors.blended_latent import BlendedLatentEditor
from editing.editors.direct_inversion import (
    DirectInversionEditor,
    direct_inversion_sample,
    sampling_schedule,
)
from editing.errors import UserInputError
from editing.inversion.cache import load_or_invert
from editing.io.artifacts import (
    load_artifact,
    make_metadata,
    model_metadata,
    read_metadata,
    save_artifact,
)
from editing.io.edit_inputs import Inputs
from editing.io.geometry import SizeRule
from editing.io.images import load_image
from editing.io.masks import downsample_mask

STAGE = "direct_inversion"


@pytest.fixture
def wide_photo(tmp_path):
    """A 64x48 (4:3) photo: on tiny_sdxl (R = 32, multiple 8) a 40x24 working size."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    rgb[12:36, 16:44] = (30, 30, 200)
    path = tmp_path / "wide.png"
    Image.fromarray(rgb).save(path)
    return path


def _image(model, path):
    return load_image(path, SizeRule.for_model(model))


def test_lambda_one_reconstructs_the_latent(tiny_sdxl_model, wide_photo):
    # DDIM inversion, then sampling with lambda = 1 (the recorded eps at every step), gives z0 back.
    model = tiny_sdxl_model
    image = _image(model, wide_photo)
    assert image.size[0] != image.size[1]
    record = load_or_invert(model, image, "", 8, None, STAGE)
    schedule = sampling_schedule(model.scheduler, 8, int(record.timesteps[0]))
    cond, uncond = model.encode_condition(["a red square"]), model.encode_condition([""])
    z = direct_inversion_sample(
        model, record.x_T, record.eps, schedule, cond, uncond, [1.0], [5.0], [True] * 8
    )
    z0 = model.encode_image(image.pixels)
    torch.testing.assert_close(z, z0, rtol=0, atol=1e-5)
    assert not torch.allclose(record.x_T, z0, atol=0.1)  # the inversion went somewhere


def test_direct_inversion_sweep_batches_the_sdxl_condition(tiny_sdxl_model, wide_photo):
    model = tiny_sdxl_model
    image = _image(model, wide_photo)
    seen = []
    handle = model.unet.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append((args[0].shape, kwargs)), with_kwargs=True
    )
    try:
        editor = DirectInversionEditor(
            num_inversion_steps=3, num_inference_steps=3, noise_lambda=[0.3, 0.6]
        )
        results = apply_editor(editor, model, Inputs(image=image, target_prompt="a blue square"))
    finally:
        handle.remove()
    assert [tuple(r.image.shape) for r in results] == [(3, *image.size)] * 2
    h, w = image.size
    shape, kwargs = seen[-1]  # a sampling call: [uncond x 2; cond x 2]
    assert shape[0] == 4
    assert torch.equal(
        kwargs["added_cond_kwargs"]["time_ids"],
        torch.tensor([[h, w, 0, 0, h, w]] * 4, dtype=torch.float32),
    )
    pooled = kwargs["added_cond_kwargs"]["text_embeds"]
    assert not pooled[:2].any() and pooled[2:].any()  # SDXL's zero unconditional pooled


def test_blended_latent_background_is_the_noised_source(tiny_sdxl_model, wide_photo):
    model = tiny_sdxl_model
    image = _image(model, wide_photo)
    h, w = image.size
    mask = torch.zeros(1, 1, h, w)
    mask[..., 8:24, 8:32] = 1
    editor = BlendedLatentEditor(num_inference_steps=6, num_candidates=2, strength=0.8)
    seen = []
    editor.callback = seen.append
    inputs = Inputs(image=image, mask=mask, target_prompt="a red circle")
    results = apply_editor(editor, model, inputs)
    schedule = make_schedule(model.scheduler, 6)
    with torch.no_grad():
        z0 = model.encode_image(image.pixels)
    m_lat = downsample_mask(mask, tuple(z0.shape[-2:]))
    assert [s["step"] for s in seen] == list(range(1, 6))
    for s in seen:
        keep = (s["mask"] == 0).expand_as(s["z"])
        assert torch.equal(s["z"][keep], s["z_bg"][keep])  # blended exactly
        assert torch.equal(s["mask"], m_lat)
        if s["noise"] is None:
            assert torch.equal(s["z_bg"], z0.expand_as(s["z_bg"]))
        else:
            a = float(schedule.alphas_prev[s["step"]])
            expected = a**0.5 * z0 + (1 - a) ** 0.5 * s["noise"]
            torch.testing.assert_close(s["z_bg"], expected, rtol=1e-6, atol=1e-6)
        assert not torch.equal(s["z"][~keep], s["z_bg"][~keep])
    keep = mask[0, 0] == 0
    for r in results:  # pixel paste: the input outside the mask, bitwise
        assert torch.equal(r.image[:, keep], image.pixels[0][:, keep])
        # the SDXL script's guidance weight when none is given
        assert r.params["guidance_scale"] == 5.0


def test_sd_keeps_the_sd_scripts_guidance(tiny_model):
    assert BlendedLatentEditor().guidance_for(tiny_model) == 7.5
    assert BlendedLatentEditor(guidance_scale=3.0).guidance_for(tiny_model) == 3.0


@pytest.mark.parametrize("method", ["direct_inversion", "blended_latent"])
def test_edit_py_end_to_end(method, wide_photo, tmp_path, tiny_sdxl_model):
    from editing_app.commands import edit

    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    mask = tmp_path / "mask.png"
    m = np.zeros((48, 64), dtype=np.uint8)
    m[12:36, 16:44] = 255
    Image.fromarray(m).save(mask)
    settings = {
        "direct_inversion": ["method.num_inversion_steps=3", "method.num_inference_steps=3"],
        "blended_latent": [
            f"mask={mask}",
            "method.num_inference_steps=4",
            "method.num_candidates=1",
        ],
    }[method]
    cfg = compose_config(
        "edit",
        [
            f"method={method}",
            "base_model=tiny_sdxl",
            "device=cpu",
            f"image={wide_photo}",
            "target_prompt=a blue square",
            f"output_dir={out}",
            f"checkpoint_dir={ckpt}",
            *settings,
        ],
    )
    assert edit.edit(cfg) == out / "edit.png"
    h, w = SizeRule.for_model(tiny_sdxl_model).plan((64, 48)).size  # the 4:3 working size
    assert Image.open(out / "edit.png").size == (w, h) and w > h
    assert Image.open(out / "edit_full.png").size == (64, 48)
    if method == "direct_inversion":  # the cached inversion records the SDXL conditioning
        meta = read_metadata(ckpt / f"{STAGE}.safetensors")
        assert meta["conditioning"] == "sdxl" and meta["sdxl_pooled_dim"] == "32"
        assert (
            meta["sdxl_time_ids"] == f"{h},{w},0,0,{h},{w}" and meta["working_size"] == f"{h}x{w}"
        )


def test_artifacts_are_refused_across_model_families(tiny_sdxl_model, tiny_model, tmp_path):
    tensors = {"e_opt": torch.zeros(1, 77, 48)}
    for made, used, words in (
        (tiny_sdxl_model, tiny_model, "made with an SDXL model"),
        (tiny_model, tiny_sdxl_model, "made with an SD-type model"),
    ):
        path = save_artifact(
            tmp_path / f"{made.name}.safetensors",
            tensors,
            make_metadata("imagic_embed", made, working_size="32x32"),
        )
        with pytest.raises(UserInputError, match=words) as err:
            load_artifact(path, "imagic_embed", expect=model_metadata(used))
        assert "\n" not in str(err.value) and "use the base model it was made with" in str(
            err.value
        )
        # ... and accepted by the model it was made with.
        load_artifact(path, "imagic_embed", expect=model_metadata(made))


def test_an_artifact_without_the_key_is_an_sd_one(tiny_model, tmp_path):
    meta = make_metadata("imagic_embed", tiny_model)
    del meta["conditioning"]  # as written before the key existed
    path = save_artifact(tmp_path / "old.safetensors", {"x": torch.zeros(1)}, meta)
    load_artifact(path, "imagic_embed", expect=model_metadata(tiny_model))


@pytest.mark.parametrize("method", ["blended"])
def test_methods_not_yet_on_sdxl_are_refused_in_one_line(method, tiny_sdxl_model):
    import hydra

    editor = hydra.utils.instantiate(compose_config("edit", [f"method={method}"]).method)
    with pytest.raises(UserInputError, match=f"method={method} does not run on SDXL yet"):
        apply_editor(editor, tiny_sdxl_model, Inputs(target_prompt="a cat"))


def test_conditioning_rows_and_batching():
    a = Conditioning(torch.randn(1, 3, 4), torch.randn(1, 2))
    b = Conditioning(torch.randn(2, 3, 4), torch.randn(2, 2))
    both = Conditioning.cat([a.expand(2), b])
    assert both.batch == 4 and torch.equal(both.pooled[:2], a.pooled.expand(2, -1))
    assert torch.equal(both[torch.tensor([False, False, True, True])].tokens, b.tokens)
    with pytest.raises(ValueError, match="different fields"):
        Conditioning.cat([a, Conditioning(torch.randn(1, 3, 4))])


def test_train_py_refuses_stages_not_on_sdxl(wide_photo, tmp_path):
    from editing_app.commands import train

    cfg = compose_config(
        "train",
        [
            "stage=imagic_cascade",
            "base_model=tiny_sdxl",
            f"image={wide_photo}",
            "target_prompt=a cat",
            f"output_dir={tmp_path / 'ckpt'}",
        ],
    )
    with pytest.raises(
        UserInputError, match=r"\(ImagicSRFinetuneStage\) do not run on SDXL yet"
    ) as err:
        train.train(cfg)
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "ckpt").glob("*.safetensors"))


def test_a_cached_inversion_is_recomputed_when_the_vae_precision_changes(
    tiny_sdxl_model, wide_photo, tmp_path, caplog
):
    from demo_world.tiny_sdxl import build_tiny_sdxl

    image = _image(tiny_sdxl_model, wide_photo)
    load_or_invert(tiny_sdxl_model, image, "", 3, tmp_path, STAGE)
    assert read_metadata(tmp_path / f"{STAGE}.safetensors")["vae_precision"] == "float32"
    half_vae = build_tiny_sdxl(vae_dtype="bfloat16")
    assert half_vae.identity == tiny_sdxl_model.identity  # same model, same weights
    with caplog.at_level("INFO"):
        load_or_invert(half_vae, image, "", 3, tmp_path, STAGE)
    assert "recomputing the inversion" in caplog.text and "vae_precision" in caplog.text
    assert read_metadata(tmp_path / f"{STAGE}.safetensors")["vae_precision"] == "bfloat16"


@pytest.mark.parametrize(
    "method", ["direct_inversion", "blended_latent", "imagic", "null_text_p2p"]
)
def test_the_evaluation_runner_edits_on_sdxl(method, tmp_path):
    from editing_app.evaluation.runner import run_suite

    steps = {
        "direct_inversion": ["method.num_inversion_steps=3", "method.num_inference_steps=3"],
        "blended_latent": ["method.num_inference_steps=3", "method.num_candidates=1"],
        "imagic": [
            "method.num_inference_steps=2",
            "method.seeds=[0]",
            'train_overrides=["stage.embed.num_steps=2","stage.finetune.num_steps=2"]',
        ],
        "null_text_p2p": [
            "method.num_inference_steps=2",
            'train_overrides=["stage.num_inference_steps=2","stage.num_inner_steps=1"]',
        ],
    }[method]
    out = tmp_path / "out"
    cfg = compose_config(
        "evaluate",
        [
            "base_model=tiny_sdxl",
            "clip=none",
            f"method={method}",
            *steps,
            "suite.edit_types=[colour]",
            "suite.n=1",
            "metrics.lpips_net=null",
            f"output_dir={out}",
        ],
    )
    report = run_suite(cfg)
    assert (report.ok, report.failed) == (1, 0)
    assert (out / "cases" / "colour-000" / "edit.png").is_file()
