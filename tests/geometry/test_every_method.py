"""Every method at non-square working sizes on tiny models: the working-size result keeps the
photo's aspect (within one size multiple), edit_full.png has the photo's size, and the masked
methods keep the photo's own pixels outside the mask, bit-exact, at full resolution."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SIZES, photo
from PIL import Image

from editing.io.geometry import SizeRule
from editing_app import api

SOURCE, TARGET = "a red square", "a blue square"


def _check(out, model, size, folder):
    """The saved results: edit.png at the planned working size with the photo's aspect, and
    edit_full.png at the photo's size. Returns edit_full.png as uint8 [h, w, 3]."""
    out.save(folder)
    w, h = size
    rule = SizeRule.for_model(model)
    height, width = rule.plan(size).size
    edit = Image.open(folder / "edit.png")
    factor = edit.size[1] // height  # a cascade's SR output is a multiple of the base size
    assert edit.size == (width * factor, height * factor)
    assert abs(width - height * w / h) <= rule.multiple, "the aspect is kept to one multiple"
    assert width != height or abs(w - h) < rule.multiple
    full = Image.open(folder / "edit_full.png")
    assert full.size == (w, h)
    return np.asarray(full.convert("RGB"))


@pytest.mark.parametrize("name", sorted(SIZES))
def test_direct_inversion(tiny_model, tmp_path, name):
    image, _ = photo(tmp_path, SIZES[name])
    steps = dict(num_inversion_steps=2, num_inference_steps=2, noise_lambda=[0.5])
    out = api.edit(
        tiny_model, "direct_inversion", image, source_prompt=SOURCE, target_prompt=TARGET, **steps
    )
    _check(out, tiny_model, SIZES[name], tmp_path / "out")


@pytest.mark.parametrize("name", ["4:3", "9:16", "800x533"])
def test_null_text_and_prompt_to_prompt_with_local_blend(tiny_model, tmp_path, name):
    image, _ = photo(tmp_path, SIZES[name])
    inversion = api.train(
        tiny_model,
        "null_text",
        image,
        source_prompt=SOURCE,
        num_inference_steps=2,
        num_inner_steps=1,
    )
    settings = dict(num_inference_steps=2, blend_words="auto", blend_resolution=1.0)
    out = api.edit(
        tiny_model, "null_text_p2p", image, target_prompt=TARGET, artifact=inversion, **settings
    )
    _check(out, tiny_model, SIZES[name], tmp_path / "out")


@pytest.mark.parametrize("name", ["4:3", "9:16", "1080p"])
def test_imagic(tiny_model, tmp_path, name):
    image, _ = photo(tmp_path, SIZES[name])
    art = api.train(
        tiny_model,
        "imagic",
        image,
        target_prompt=TARGET,
        output_dir=tmp_path / "ckpt",
        embed={"num_steps": 2},
        finetune={"num_steps": 2},
    )
    out = api.edit(
        tiny_model, "imagic", image, artifact=art, eta=[0.7], seeds=[0], num_inference_steps=2
    )
    _check(out, tiny_model, SIZES[name], tmp_path / "out")


@pytest.mark.parametrize("name", sorted(SIZES))
def test_blended_latent_keeps_the_full_size_background_bit_exact(tiny_model, tmp_path, name):
    image, mask = photo(tmp_path, SIZES[name])
    settings = dict(num_inference_steps=2, num_candidates=1)
    out = api.edit(tiny_model, "blended_latent", image, mask=mask, target_prompt=TARGET, **settings)
    full = _check(out, tiny_model, SIZES[name], tmp_path / "out")
    source = np.asarray(Image.open(image).convert("RGB"))
    outside = np.asarray(Image.open(mask)) == 0
    assert np.array_equal(full[outside], source[outside])
    assert not np.array_equal(full[~outside], source[~outside]), "the masked region was edited"


@pytest.mark.parametrize("name", ["4:3", "9:16", "450x600"])
def test_blended_pixel_keeps_the_full_size_background_bit_exact(
    tiny_pixel, clip_dir, tmp_path, name
):
    image, mask = photo(tmp_path, SIZES[name])
    settings = dict(num_timesteps=4, skip_timesteps=1, num_augmentations=2, num_candidates=1)
    out = api.edit(
        tiny_pixel, "blended", image, mask=mask, target_prompt=TARGET, clip=clip_dir, **settings
    )
    full = _check(out, tiny_pixel, SIZES[name], tmp_path / "out")
    source = np.asarray(Image.open(image).convert("RGB"))
    outside = np.asarray(Image.open(mask)) == 0
    assert np.array_equal(full[outside], source[outside])


def test_feather_is_bit_exact_beyond_its_band(tiny_model, tmp_path):
    from editing.io.masks import dilate_mask

    image, mask = photo(tmp_path, SIZES["800x533"])
    settings = dict(num_inference_steps=2, num_candidates=1, feather=4)
    out = api.edit(tiny_model, "blended_latent", image, mask=mask, target_prompt=TARGET, **settings)
    full = _check(out, tiny_model, SIZES["800x533"], tmp_path / "out")
    source = np.asarray(Image.open(image).convert("RGB"))
    import torch

    region = torch.from_numpy(np.asarray(Image.open(mask)) > 0).float()[None, None]
    beyond = dilate_mask(region, 4)[0, 0].numpy() == 0
    band = (dilate_mask(region, 3)[0, 0].numpy() > 0) & (region[0, 0].numpy() == 0)
    assert np.array_equal(full[beyond], source[beyond])
    assert not np.array_equal(full[band], source[band]), "the band is blended"


@pytest.mark.parametrize("name", ["4:3", "9:16"])
def test_cascade_super_resolves_at_the_matching_non_square_size(tiny_cascade, tmp_path, name):
    image, _ = photo(tmp_path, SIZES[name])
    steps = dict(num_inversion_steps=2, num_inference_steps=2, noise_lambda=[0.5])
    out = api.edit(
        tiny_cascade,
        "direct_inversion",
        image,
        source_prompt=SOURCE,
        target_prompt=TARGET,
        sr={"num_inference_steps": 2},
        **steps,
    )
    height, width = SizeRule.for_model(tiny_cascade).plan(SIZES[name]).size
    assert out.image.size == (width * 2, height * 2)
    _check(out, tiny_cascade, SIZES[name], tmp_path / "out")
