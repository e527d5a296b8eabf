"""Pixel Blended Diffusion (Algorithms 1-3): exact background, guidance, ranking, recipes, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config
from PIL import Image

from editing.diffusion.ddim import ddim_step
from editing.diffusion.ddpm import make_ddpm_schedule
from editing.diffusion.noise import seeded_generators
from editing.editors.blended import BlendedEditor, BlendedSampler
from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import from_uint8
from editing.io.masks import dilate_mask, outpaint_canvas
from editing.models.clip import build_clip, load_clip, save_clip

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
R = 16


@pytest.fixture(scope="module")
def model():
    from demo_world.tiny import build_tiny_model

    return build_tiny_model(latent=False, resolution=R)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    torch.manual_seed(0)
    return str(save_clip(build_clip(TINY_CLIP), tmp_path_factory.mktemp("clip")))


def _pixels(seed: int = 0) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 255, (R, R, 3), dtype=np.uint8)
    rgb[4:12, 4:12] = (200, 30, 30)  # an "object"
    return rgb


def _box(top=4, bottom=12, left=4, right=12) -> torch.Tensor:
    m = torch.zeros(1, 1, R, R)
    m[..., top:bottom, left:right] = 1
    return m


def _inputs(prompt="a red circle", mask=None, pixels=None, seed=0) -> Inputs:
    image = from_uint8(_pixels() if pixels is None else pixels)
    return Inputs(
        image=image, mask=_box() if mask is None else mask, target_prompt=prompt, seed=seed
    )


def _editor(clip_dir, **kw) -> BlendedEditor:
    fast = dict(num_timesteps=8, skip_timesteps=2, num_augmentations=3, num_candidates=2)
    return BlendedEditor(**{**fast, "clip_path": clip_dir, **kw})


def _same_outside(image: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> bool:
    keep = mask[0, 0] == 0
    return torch.equal(image[:, keep], source[0][:, keep])


# --- exact background, samplers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"sampler": "ddpm"},
        {"sampler": "ddim"},
        {"variance": "large", "reference_background_level": True},
        {"text_condition": True, "batch_size": 1},
    ],
)
def test_outside_the_mask_the_result_equals_the_input_exactly(model, clip_dir, options):
    inputs = _inputs()
    results = _editor(clip_dir, **options)(model, inputs)
    assert len(results) == 2
    for r in results:
        assert r.image.shape == (3, R, R) and r.image.dtype == torch.float32
        assert _same_outside(r.image, inputs.image.pixels, inputs.mask)
        assert not torch.equal(r.image, inputs.image.pixels[0])  # the inside did change


def test_unguided_step_is_plain_blended_ddpm(model, clip_dir):
    """lambda = 0 and no range loss: x_{t-1} = mu~(x_t, x0_hat) + sigma z inside, q(x_{t-1}|x0) out."""
    editor = _editor(clip_dir, clip_guidance_lambda=0.0, range_lambda=0.0)
    inputs = _inputs()
    x0, mask = inputs.image.pixels, inputs.mask
    emb = model.encode_prompt([""])
    schedule = make_ddpm_schedule(model.alphas_cumprod, 8)
    sampler = BlendedSampler(model, x0, mask, emb, schedule, editor, None, None)
    assert not sampler.guided
    g = torch.Generator().manual_seed(3)
    x_t, z_fg, z_bg = (torch.randn(2, 3, R, R, generator=g) for _ in range(3))
    i = 5
    out = sampler.step(x_t, i, seeded_generators([0, 1]), z_fg, z_bg)
    # By hand, DDPM eq. 7 on the respaced chain.
    t = int(schedule.timesteps[i])
    a, a_prev = (
        model.alphas_cumprod[t].double(),
        model.alphas_cumprod[schedule.timesteps[i - 1]].double(),
    )
    with torch.no_grad():
        eps = model.eps(x_t, t, emb.expand(2, -1, -1)).double()
    x0_hat = (x_t.double() - (1 - a).sqrt() * eps) / a.sqrt()
    beta = 1 - a / a_prev
    mean = (
        a_prev.sqrt() * beta / (1 - a) * x0_hat + (1 - beta).sqrt() * (1 - a_prev) / (1 - a) * x_t
    )
    x_fg = mean + (beta * (1 - a_prev) / (1 - a)).sqrt() * z_fg
    x_bg = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * z_bg
    expected = x_fg * mask + x_bg * (1 - mask)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    # The DDIM variant (Algorithm 3) unguided: a DDIM step, blended the same way.
    sampler.ddim = True
    out = sampler.step(x_t, i, seeded_generators([0, 1]), None, z_bg)
    expected = ddim_step(x_t, eps.float(), float(a), float(a_prev)) * mask + x_bg * (1 - mask)
    torch.testing.assert_close(out.double(), expected.double(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ddim", [False, True])
def test_guided_step_moves_against_the_loss_gradient(model, clip_dir, ddim):
    """Algorithm 2: mean - Sigma g; Algorithm 3: eps + sqrt(1 - a_t) g (g = dL/dx_t)."""
    editor = _editor(clip_dir, sampler="ddim" if ddim else "ddpm")
    inputs = _inputs()
    clip = load_clip(clip_dir)
    text = clip.encode_text(["a red circle"])
    schedule = make_ddpm_schedule(model.alphas_cumprod, 8)
    emb = model.encode_prompt([""])
    sampler = BlendedSampler(
        model, inputs.image.pixels, inputs.mask, emb, schedule, editor, clip, text
    )
    x_t, z_fg, z_bg = (
        torch.randn(2, 3, R, R, generator=torch.Generator().manual_seed(k)) for k in range(3)
    )
    i = 4
    eps, x0_hat, grad, v = sampler.guidance(x_t, i, seeded_generators([0, 1]))
    assert v is None and grad is not None and grad.abs().sum() > 0
    out = sampler.step(x_t, i, seeded_generators([0, 1]), z_fg, z_bg)
    unguided = BlendedSampler(
        model, inputs.image.pixels, inputs.mask, emb, schedule, editor, None, None
    )
    plain = unguided.step(x_t, i, None, z_fg, z_bg)
    a, a_prev = (float(v) for v in schedule.level(i)[1:])
    if ddim:
        shift = ddim_step(x_t, eps + (1 - a) ** 0.5 * grad, a, a_prev) - ddim_step(
            x_t, eps, a, a_prev
        )
    else:
        shift = -(1 - a_prev) / (1 - a) * (1 - a / a_prev) * grad
    torch.testing.assert_close(out - plain, shift * inputs.mask, rtol=1e-4, atol=1e-6)


def test_clip_gradient_changes_the_result(model, clip_dir):
    inputs = _inputs()
    guided = _editor(clip_dir, range_lambda=0.0, num_candidates=1)(model, inputs)[0]
    plain = _editor(clip_dir, range_lambda=0.0, num_candidates=1, clip_guidance_lambda=0.0)(
        model, inputs
    )[0]
    assert (guided.image - plain.image).abs().max() > 1e-3
    assert _same_outside(guided.image, plain.image[None], inputs.mask)


def test_local_clip_baseline_guides_the_background_instead_of_blending(model, clip_dir):
    inputs = _inputs()
    result = _editor(clip_dir, algorithm="local_clip", num_candidates=1)(model, inputs)[0]
    assert not _same_outside(result.image, inputs.image.pixels, inputs.mask)
    assert result.params["algorithm"] == "local_clip" and result.score is not None
    with pytest.raises(UserInputError, match="target_prompt is empty"):
        _editor(clip_dir, algorithm="local_clip")(model, _inputs(prompt=""))


def test_prompts_longer_than_the_clip_context_are_refused_not_truncated(model, clip_dir):
    clip = load_clip(clip_dir)
    assert clip.context_length == TINY_CLIP["text_cfg"]["context_length"] == 16
    clip.check_text([" ".join(["cat"] * 14)])  # 14 words + start/end tokens: exactly 16
    with pytest.raises(
        UserInputError, match="is 17 tokens long; the CLIP text encoder takes at most 16"
    ):
        clip.encode_text([" ".join(["cat"] * 15)])
    long = " ".join(["red"] * 300)
    with pytest.raises(
        UserInputError, match="target_prompt 'red red.* is 302 tokens long.* at most 16"
    ):
        _editor(clip_dir)(model, _inputs(prompt=long))


# --- ranking -----------------------------------------------------------------------------------


def test_ranking_is_sorted_by_the_reported_score_which_recomputes(model, clip_dir):
    inputs = _inputs(seed=5)
    results = _editor(clip_dir, num_candidates=3, batch_size=2)(model, inputs)
    scores = [r.score for r in results]
    assert scores == sorted(scores) and len(set(scores)) == 3
    assert sorted(r.params["seed"] for r in results) == [5, 6, 7]
    assert [r.label.split()[0] for r in results] == ["#1", "#2", "#3"]
    clip = load_clip(clip_dir)
    with torch.no_grad():
        u = clip.encode_image(
            ((torch.stack([r.image for r in results]) + 1) / 2).clamp(0, 1) * inputs.mask
        )
        v = clip.encode_text(["a red circle"])
    independent = 2 * torch.arcsin((u - v).norm(dim=-1) / 2) ** 2
    torch.testing.assert_close(torch.tensor(scores), independent, rtol=1e-5, atol=1e-6)


def test_candidates_do_not_depend_on_the_batching(model, clip_dir):
    inputs = _inputs()
    one_batch = _editor(clip_dir, num_candidates=3, batch_size=3)(model, inputs)
    singles = _editor(clip_dir, num_candidates=3, batch_size=1)(model, inputs)
    by_seed = {r.params["seed"]: r.image for r in singles}
    for r in one_batch:
        torch.testing.assert_close(r.image, by_seed[r.params["seed"]], rtol=0, atol=1e-4)


def test_empty_prompt_runs_unguided_and_unranked_without_clip(model):
    inputs = _inputs(prompt="")
    results = BlendedEditor(num_timesteps=6, skip_timesteps=1, num_candidates=2)(model, inputs)
    assert [r.score for r in results] == [None, None]
    assert [r.params["seed"] for r in results] == [0, 1]
    assert all(_same_outside(r.image, inputs.image.pixels, inputs.mask) for r in results)


# --- refusals ----------------------------------------------------------------------------------


def test_refusals(model, clip_dir, tiny_model):
    with pytest.raises(UserInputError, match="use method=blended_latent"):
        _editor(clip_dir)(tiny_model, _inputs())
    with pytest.raises(UserInputError, match="needs mask=PATH"):
        _editor(clip_dir)(model, Inputs(image=from_uint8(_pixels()), target_prompt="a cat"))
    with pytest.raises(UserInputError, match="does not exist"):
        _editor("/nonexistent/clip")(model, _inputs())
    with pytest.raises(UserInputError, match="no CLIP model given"):
        _editor(None)(model, _inputs())
    with pytest.raises(UserInputError, match="method.sampler"):
        BlendedEditor(sampler="plms")
    with pytest.raises(UserInputError, match="skip_timesteps"):
        BlendedEditor(num_timesteps=10, skip_timesteps=10)


def test_demo_clip_config_resolves_to_the_shipped_folder():
    from editing.models.clip import load_clip
    from editing_app.configs import compose_config

    cfg = compose_config("edit", ["clip=demo"])
    assert Path(cfg.clip.path).is_absolute()
    assert Path(cfg.clip.path).parts[-2:] == ("demo", "clip")
    assert load_clip(cfg.clip.path, cfg.clip.name) is not None
    with pytest.raises(UserInputError, match="does not exist"):
        load_clip(str(Path(cfg.clip.path) / "missing"), None)


# --- recipes (docs/blended_recipes.md) ---------------------------------------------------------


def _scribble() -> tuple[np.ndarray, torch.Tensor]:
    rgb = _pixels()
    stroke = torch.zeros(1, 1, R, R)
    for k in range(3, 13):  # a diagonal stroke painted into the image
        rgb[k, k] = (20, 200, 20)
        stroke[..., k, k] = 1
    return rgb, stroke


def _outpaint() -> tuple[np.ndarray, torch.Tensor]:
    small = Image.fromarray(_pixels()[2:14, 2:14])
    canvas, mask = outpaint_canvas(small, 2)
    return np.asarray(canvas), torch.from_numpy(np.asarray(mask) > 127).float()[None, None]


RECIPES = {
    "add_object": ({"target_prompt": "a red circle"}, {}, None),
    "replace_object": ({"target_prompt": "a blue circle"}, {}, None),
    "remove_object": ({"target_prompt": ""}, {}, None),
    "change_background": ({"target_prompt": "a green background"}, {"invert_mask": True}, None),
    "scribble": ({"target_prompt": "a green snake"}, {"dilate": 1}, _scribble),
    "outpaint": ({"target_prompt": "a red square on noise"}, {}, _outpaint),
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipes_keep_everything_outside_the_edited_region(model, clip_dir, recipe):
    text, options, build = RECIPES[recipe]
    pixels, mask = (
        build() if build else (None, _box(10, 15, 1, 6) if recipe == "add_object" else None)
    )
    inputs = _inputs(prompt=text["target_prompt"], mask=mask, pixels=pixels)
    edited = inputs.mask
    if options.get("invert_mask"):
        edited = 1 - edited
    edited = dilate_mask(edited, options.get("dilate", 0))
    for r in _editor(clip_dir, **options)(model, inputs):
        assert _same_outside(r.image, inputs.image.pixels, edited)
        assert not torch.equal(
            r.image[:, edited[0, 0] > 0], inputs.image.pixels[0][:, edited[0, 0] > 0]
        )


# --- through edit.py ---------------------------------------------------------------------------


def _files(tmp_path, mask_array: np.ndarray | None = None, mask_size=(R, R)):
    Image.fromarray(_pixels()).save(tmp_path / "image.png")
    if mask_array is None:
        mask_array = np.zeros(mask_size[::-1], dtype=np.uint8)
        mask_array[4:12, 4:12] = 255
    Image.fromarray(mask_array).save(tmp_path / "mask.png")
    return tmp_path / "image.png", tmp_path / "mask.png"


def _cfg(tmp_path, image, mask, clip_dir, *extra):
    return compose_config(
        "edit",
        [
            "method=blended",
            "base_model=tiny_pixel",
            f"image={image}",
            f"mask={mask}",
            "target_prompt=a red circle",
            f"output_dir={tmp_path / 'out'}",
            "device=cpu",
            "method.num_timesteps=6",
            "method.skip_timesteps=1",
            "method.num_augmentations=2",
            "method.num_candidates=2",
            f"++clip.path={clip_dir}",
            *extra,
        ],
    )


def test_edit_py_end_to_end_writes_ranked_samples(tmp_path, clip_dir):
    from editing_app.commands.edit import edit

    image, mask = _files(tmp_path)
    out = edit(_cfg(tmp_path, image, mask, clip_dir, "method.sampler=ddim"))
    folder = out.parent
    samples = sorted((folder / "samples").iterdir())
    assert [p.name[:4] for p in samples] == ["000_", "001_"]
    assert all((folder / n).is_file() for n in ("edit.png", "grid.png", "config.yaml"))
    scores = [json.loads(Image.open(p).text["score"]) for p in samples]
    assert scores == sorted(scores)
    source, m = np.asarray(Image.open(image)), np.asarray(Image.open(mask)) == 0
    for p in [out, *samples]:
        assert np.array_equal(np.asarray(Image.open(p))[m], source[m])  # bitwise, after PNG
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(samples[0])))


@pytest.mark.parametrize(
    "case, match",
    [("empty", "is empty"), ("full", "whole image"), ("size", "give a mask of the image's size")],
)
def test_edit_py_refuses_bad_masks_and_writes_nothing(tmp_path, clip_dir, case, match):
    from editing_app.commands.edit import edit

    arrays = {"empty": np.zeros((R, R), np.uint8), "full": np.full((R, R), 255, np.uint8)}
    image, mask = _files(tmp_path, arrays.get(case), mask_size=(R + 4, R))
    with pytest.raises(UserInputError, match=match):
        edit(_cfg(tmp_path, image, mask, clip_dir))
    assert not (tmp_path / "out").exists()


def test_edit_py_invert_and_dilate(tmp_path, clip_dir):
    from editing_app.commands.edit import edit

    image, mask = _files(tmp_path)
    out = edit(_cfg(tmp_path, image, mask, clip_dir, "method.invert_mask=true", "method.dilate=1"))
    kept = np.asarray(Image.open(mask)) > 127
    kept = ~(dilate_mask(torch.from_numpy(~kept).float()[None, None], 1)[0, 0].numpy() > 0)
    source, result = np.asarray(Image.open(image)), np.asarray(Image.open(out))
    assert kept.sum() == 6 * 6 and np.array_equal(result[kept], source[kept])
    assert not np.array_equal(result[~kept], source[~kept])
