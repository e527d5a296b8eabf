"""Direct Inversion (Elarabawy et al. 2022): exact properties, batching, caching, edit.py."""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest
import torch
from helpers import compose_config
from PIL import Image

import editing.editors.direct_inversion as di
from editing.diffusion.cfg import guided_eps
from editing.diffusion.ddim import DDIMSchedule, ddim_step, make_schedule
from editing.diffusion.sampling import sample
from editing.editors.direct_inversion import (
    DirectInversionEditor,
    direct_inversion_sample,
    injection_steps,
    merge_noise,
    nearest_inversion_index,
    sampling_schedule,
)
from editing.errors import UserInputError
from editing.inversion.cache import load_or_invert
from editing.io.artifacts import read_metadata
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image

STAGE = "direct_inversion"


@contextmanager
def unet_calls(model):
    """Records the batch size of every UNet forward call made inside the block."""
    sizes: list[int] = []
    handle = model.unet.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    try:
        yield sizes
    finally:
        handle.remove()


def setup(model, image_path, steps: int = 5, prompt: str = "a red square"):
    """(image, record, schedule, cond, uncond) for `steps` inversion and inference steps."""
    image = load_image(image_path, model.resolution)
    record = load_or_invert(model, image, "", steps, None, STAGE)
    schedule = sampling_schedule(model.scheduler, steps, int(record.timesteps[0]))
    return image, record, schedule, model.encode_prompt([prompt]), model.encode_prompt([""])


def editor(**kw) -> DirectInversionEditor:
    return DirectInversionEditor(**{"num_inversion_steps": 3, "num_inference_steps": 3, **kw})


# ------------------------------------------------------------------------------ exact maths
@pytest.mark.parametrize("merge", ["linear", "variance_preserving"])
@pytest.mark.parametrize("which", ["tiny_model", "tiny_v_model"])
def test_lambda_one_reconstructs_z0(which, merge, image_path, request):
    model = request.getfixturevalue(which)
    image, record, schedule, cond, uncond = setup(model, image_path, steps=8)
    assert torch.equal(schedule.timesteps, record.timesteps)  # same steps -> same schedule
    with unet_calls(model) as sizes:
        z = direct_inversion_sample(
            model, record.x_T, record.eps, schedule, cond, uncond, [1.0], [3.0], [True] * 8, merge
        )
    assert sizes == []  # lambda = 1 at every step needs no eps_cfg at all
    z0 = model.encode_image(image.pixels)
    # DDIM with the recorded eps is the exact inverse of the inversion: only rounding remains.
    torch.testing.assert_close(z, z0, rtol=0, atol=1e-5)


def test_lambda_zero_is_plain_guided_ddim(tiny_model, image_path):
    model = tiny_model
    _, record, schedule, cond, uncond = setup(model, image_path)
    z = direct_inversion_sample(
        model, record.x_T, record.eps, schedule, cond, uncond, [0.0], [3.0], [True] * 5
    )
    x = record.x_T
    for _, t, a_t, a_prev in schedule.sampling():
        x = ddim_step(x, guided_eps(model, x, t, cond, uncond, 3.0), a_t, a_prev)
    assert torch.equal(z, x)
    # ... and the project's generation loop from the same x_T gives the very same sample.
    assert torch.equal(z, sample(model, cond, record.x_T, 5, 3.0, uncond))


def test_injection_happens_exactly_at_the_intended_steps(tiny_model, image_path, monkeypatch):
    assert injection_steps(6, 3, 2) == [True, False, True, False, False, False]
    assert injection_steps(4, None, 1) == [True] * 4
    assert injection_steps(4, 0, 1) == [False] * 4
    assert injection_steps(7, None, 3) == [True, False, False, True, False, False, True]

    model = tiny_model
    _, record, schedule, cond, uncond = setup(model, image_path, steps=6)
    merged_at: list[int] = []
    real_merge = di.merge_noise
    monkeypatch.setattr(
        di, "merge_noise", lambda *a: merged_at.append(len(merged_at)) or real_merge(*a)
    )
    inject = injection_steps(6, 3, 2)
    z = direct_inversion_sample(
        model, record.x_T, record.eps, schedule, cond, uncond, [0.5], [3.0], inject
    )
    assert len(merged_at) == 2
    # Manual loop: merge at steps 0 and 2 only.
    x = record.x_T
    for i, t, a_t, a_prev in schedule.sampling():
        eps = guided_eps(model, x, t, cond, uncond, 3.0)
        if i in (0, 2):
            eps = 0.5 * eps + 0.5 * record.eps[i]
        x = ddim_step(x, eps, a_t, a_prev)
    torch.testing.assert_close(z, x, rtol=0, atol=1e-6)
    never = direct_inversion_sample(
        model, record.x_T, record.eps, schedule, cond, uncond, [0.5], [3.0], [False] * 6
    )
    assert (never - z).abs().max() > 1e-3


def test_variance_preserving_merge_is_exact_at_one_step(tiny_model, image_path):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    lam = 0.3
    expected = (lam * b + (1 - lam) * a) / (lam**2 + (1 - lam) ** 2) ** 0.5
    torch.testing.assert_close(merge_noise(a, b, lam, "variance_preserving"), expected)
    for merge in ("linear", "variance_preserving"):
        assert torch.equal(merge_noise(a, b, 0.0, merge), a)
        assert torch.equal(merge_noise(a, b, 1.0, merge), b.expand_as(a))

    model = tiny_model
    _, record, schedule, cond, uncond = setup(model, image_path)
    one = DDIMSchedule(schedule.timesteps[:1], schedule.alphas[:1], schedule.alphas_prev[:1])
    z = direct_inversion_sample(
        model,
        record.x_T,
        record.eps,
        one,
        cond,
        uncond,
        [lam],
        [3.0],
        [True],
        "variance_preserving",
    )
    eps_cfg = guided_eps(model, record.x_T, one.timesteps[0], cond, uncond, 3.0)
    eps = (lam * record.eps[0] + (1 - lam) * eps_cfg) / (lam**2 + (1 - lam) ** 2) ** 0.5
    expected = ddim_step(record.x_T, eps, one.alphas[0], one.alphas_prev[0])
    torch.testing.assert_close(z, expected, rtol=1e-6, atol=1e-6)


def test_mismatched_step_counts_start_at_x_T_and_use_nearest_eps(tiny_model):
    scheduler = tiny_model.scheduler
    inv = make_schedule(scheduler, 10).timesteps  # 901, 801, ..., 1
    # fewer inference steps: u_0 is relabelled with x_T's timestep, the rest are the scheduler's
    fewer = sampling_schedule(scheduler, 4, int(inv[0]))
    assert fewer.timesteps.tolist() == [901, 501, 251, 1]
    assert fewer.alphas[0] == scheduler.alphas_cumprod[901]
    torch.testing.assert_close(fewer.alphas_prev[:-1], fewer.alphas[1:])
    assert nearest_inversion_index(fewer.timesteps, inv).tolist() == [0, 4, 6, 9]  # 251: tie -> 301
    # more inference steps: the ones above x_T's level (t=901) cannot be run
    more = sampling_schedule(scheduler, 20, int(inv[0]))
    assert more.timesteps[0] == 901 and len(more) == 19 and bool((more.timesteps <= 901).all())
    assert nearest_inversion_index(make_schedule(scheduler, 10).timesteps, inv).tolist() == list(
        range(10)
    )


# ------------------------------------------------------------------------- editor contracts
def test_sweep_reuses_one_inversion_and_batches_samples(tiny_model, image_path):
    image = load_image(image_path, tiny_model.resolution)
    inputs = Inputs(image=image, target_prompt="a red square")
    sweep = {"noise_lambda": [0.3, 0.7], "guidance_scale": [2.0, 4.0]}
    with unet_calls(tiny_model) as sizes:
        results = editor(**sweep)(tiny_model, inputs)
    # 3 inversion calls (batch 1), then 3 sampling calls for the 4 samples' CFG pairs (batch 8)
    assert sizes == [1, 1, 1, 8, 8, 8]
    assert [r.label for r in results] == [
        "lambda=0.3 w=2",
        "lambda=0.3 w=4",
        "lambda=0.7 w=2",
        "lambda=0.7 w=4",
    ]
    with unet_calls(tiny_model) as sizes:
        chunked = editor(**sweep, batch_size=2)(tiny_model, inputs)
    assert sizes == [1, 1, 1] + [4] * 3 * 2
    # Another batch size changes how the fp32 matrix products are blocked, so sums differ in their
    # last bits: up to 1.03e-5 in these [-1, 1] images on an Intel Xeon, below 1e-5 on an AMD EPYC.
    for a, b in zip(results, chunked):
        torch.testing.assert_close(a.image, b.image, rtol=0, atol=5e-5)
    # lambda = 1 rows spend no UNet call; w = 1 rows need only the conditional pass
    with unet_calls(tiny_model) as sizes:
        editor(noise_lambda=[0.5, 1.0], guidance_scale=1.0)(tiny_model, inputs)
    assert sizes == [1, 1, 1, 1, 1, 1]


def test_inversion_artifact_round_trip(tiny_model, image_path, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    ckpt = tmp_path / "ckpt"
    image = load_image(image_path, tiny_model.resolution)
    inputs = Inputs(image=image, target_prompt="a red square", checkpoint_dir=ckpt)
    first = editor()(tiny_model, inputs)
    path = ckpt / f"{STAGE}.safetensors"
    meta = read_metadata(path)
    assert meta["image_sha256"] == image.sha256 and meta["num_inversion_steps"] == "3"
    assert meta["inversion_prompt"] == "" and meta["base_model"] == tiny_model.identity.name

    # 1. Same inputs: reused, no inversion UNet calls, same result.
    caplog.clear()
    with unet_calls(tiny_model) as sizes:
        second = editor()(tiny_model, inputs)
    assert sizes == [2, 2, 2] and "reusing the inversion" in caplog.text
    assert torch.equal(first[0].image, second[0].image)

    # 2. Another inversion prompt: recomputed (the log says why) and overwritten.
    caplog.clear()
    with unet_calls(tiny_model) as sizes:
        editor(inversion_prompt="a photo")(tiny_model, inputs)
    assert len(sizes) == 6 and "recomputing" in caplog.text and "inversion_prompt" in caplog.text
    assert read_metadata(path)["inversion_prompt"] == "a photo"

    # 3. Another image: recomputed, never the stale x_T.
    other = image_path.parent / "other.png"
    Image.open(image_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other)
    flipped = load_image(other, tiny_model.resolution)
    caplog.clear()
    record = load_or_invert(tiny_model, flipped, "a photo", 3, ckpt, STAGE)
    assert "image_sha256" in caplog.text and read_metadata(path)["image_sha256"] == flipped.sha256
    fresh = load_or_invert(tiny_model, flipped, "a photo", 3, None, STAGE)
    assert torch.equal(record.x_T, fresh.x_T)

    # 4. A corrupt file is recomputed too; no checkpoint_dir writes nothing.
    path.write_bytes(b"not safetensors")
    caplog.clear()
    load_or_invert(tiny_model, image, "", 3, ckpt, STAGE)
    assert "recomputing" in caplog.text and read_metadata(path)["image_sha256"] == image.sha256
    load_or_invert(tiny_model, image, "", 3, None, STAGE)
    assert sorted(p.name for p in ckpt.iterdir()) == [path.name]


def test_start_from_noise_uses_seeds(tiny_model, image_path):
    image = load_image(image_path, tiny_model.resolution)
    inputs = Inputs(image=image, target_prompt="a red square")
    results = editor(start="noise", seeds=[0, 1], guidance_scale=[3.0])(tiny_model, inputs)
    assert [r.label for r in results] == ["lambda=0.5 w=3 seed=0", "lambda=0.5 w=3 seed=1"]
    assert (results[0].image - results[1].image).abs().max() > 1e-4
    again = editor(start="noise", seeds=1)(tiny_model, inputs)
    torch.testing.assert_close(again[0].image, results[1].image, rtol=0, atol=1e-5)


def test_v_prediction_model_edits(tiny_v_model, image_path):
    image = load_image(image_path, tiny_v_model.resolution)
    results = editor(noise_lambda=[0.0, 1.0])(
        tiny_v_model, Inputs(image=image, target_prompt="a cat")
    )
    assert len(results) == 2 and results[0].image.shape == (3, 32, 32)
    assert all(torch.isfinite(r.image).all() for r in results)


@pytest.mark.parametrize(
    ("kwargs", "with_image", "prompt", "match"),
    [
        ({}, False, "a cat", "method=direct_inversion needs image=PATH"),
        ({}, True, "  ", "target_prompt is empty"),
        (
            {"noise_lambda": [0.5, 1.5]},
            True,
            "a cat",
            r"noise_lambda=1.5 is outside .*\[0.0, 1.0\]",
        ),
        ({"noise_lambda": "abc"}, True, "a cat", "noise_lambda must be a number"),
        ({"guidance_scale": -1}, True, "a cat", "guidance_scale=-1.0 is outside"),
        ({"seeds": [0, 1]}, True, "a cat", "only applies to method.start=noise"),
        ({"merge": "cosine"}, True, "a cat", "method.merge='cosine'"),
        ({"start": "latent"}, True, "a cat", "method.start='latent'"),
        ({"stop_step": 4}, True, "a cat", "method.stop_step=4 is outside"),
        ({"inject_every": 0}, True, "a cat", "method.inject_every=0 is outside"),
        ({"num_inference_steps": [3, 4]}, True, "a cat", "takes one integer"),
    ],
)
def test_bad_inputs_are_refused(kwargs, with_image, prompt, match, tiny_model, image_path):
    image = load_image(image_path, tiny_model.resolution) if with_image else None
    with pytest.raises(UserInputError, match=match):
        editor(**kwargs)(tiny_model, Inputs(image=image, target_prompt=prompt))


# ----------------------------------------------------------------------------------- edit.py
def test_edit_py_end_to_end(image_path, tmp_path):
    from editing_app.commands import edit

    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    cfg = compose_config(
        "edit",
        [
            "method=direct_inversion",
            "base_model=tiny",
            "device=cpu",
            f"image={image_path}",
            "target_prompt=a blue square",
            f"output_dir={out}",
            f"checkpoint_dir={ckpt}",
            "method.num_inversion_steps=4",
            "method.num_inference_steps=4",
            "method.noise_lambda=[0.5,1.0]",
            "method.guidance_scale=[1,3]",
        ],
    )
    assert edit.edit(cfg) == out / "edit.png"
    png = Image.open(out / "edit.png")
    assert png.text["prompt"] == "a blue square" and png.text["method"] == "direct_inversion"
    assert png.text["noise_lambda"] == "0.5" and png.text["guidance_scale"] == "1.0"
    samples = sorted(p.name for p in (out / "samples").iterdir())
    assert samples == [
        "000_lambda=0.5_w=1.png",
        "001_lambda=0.5_w=3.png",
        "002_lambda=1_w=1.png",
        "003_lambda=1_w=3.png",
    ]
    assert (out / "grid.png").is_file() and "direct_inversion" in (out / "config.yaml").read_text()
    assert (ckpt / f"{STAGE}.safetensors").is_file()


def test_invert_with_source_conditions_the_inversion_on_the_source_prompt(tiny_model, image_path):
    image = load_image(image_path, tiny_model.resolution)
    inputs = Inputs(image=image, source_prompt="a blue square", target_prompt="a red square")
    by_source = editor(invert_with_source=True, noise_lambda=0.5)(tiny_model, inputs)
    by_text = editor(inversion_prompt="a blue square", noise_lambda=0.5)(tiny_model, inputs)
    by_empty = editor(noise_lambda=0.5)(tiny_model, inputs)
    assert torch.equal(by_source[0].image, by_text[0].image)
    assert not torch.equal(by_source[0].image, by_empty[0].image)
    assert by_source[0].params["invert_with_source"] is True

    with pytest.raises(UserInputError, match="source_prompt is empty"):
        editor(invert_with_source=True)(tiny_model, Inputs(image=image, target_prompt="a cat"))
    with pytest.raises(UserInputError, match="drop method.inversion_prompt"):
        editor(invert_with_source=True, inversion_prompt="a photo")


def test_latent_injection_merges_the_inverted_latent(tiny_model, image_path):
    """inject=latent: eps = eps_cfg + lambda (x_T_inv - eps_cfg); with lambda = 1 one DDIM step
    from x_T with eps = x_T_inv itself, and with lambda = 0.5 the halfway merge."""
    model = tiny_model
    image = load_image(image_path, model.resolution)
    inputs = Inputs(image=image, target_prompt="a blue circle")
    record = load_or_invert(model, image, "", 1, None, STAGE)
    x_T = record.x_T
    schedule = sampling_schedule(model.scheduler, 1, int(record.timesteps[0]))
    t, a_t, a_prev = schedule.timesteps[0], schedule.alphas[0], schedule.alphas_prev[0]
    cond, uncond = model.encode_prompt(["a blue circle"]), model.encode_prompt([""])
    with torch.no_grad():
        eps_cfg = guided_eps(model, x_T, t, cond, uncond, 3.0)
    for lam in (1.0, 0.5):
        editor = DirectInversionEditor(
            noise_lambda=lam, num_inversion_steps=1, num_inference_steps=1, inject="latent"
        )
        (result,) = editor(model, inputs)
        eps = x_T if lam == 1.0 else eps_cfg + lam * (x_T - eps_cfg)
        expected = model.decode(ddim_step(x_T, eps, a_t, a_prev)).clamp(-1, 1)[0]
        torch.testing.assert_close(result.image, expected, rtol=0, atol=1e-5)
        assert result.params["inject"] == "latent"
    (plain,) = DirectInversionEditor(
        noise_lambda=1.0, num_inversion_steps=1, num_inference_steps=1
    )(model, inputs)
    assert "inject" not in plain.params and not torch.equal(plain.image, result.image)
