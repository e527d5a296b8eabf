"""Pixel Blended Diffusion on a guided-diffusion (ADM) checkpoint, unconditionally, as the paper:
`base_model=adm256` with a tiny ADM file in place of 256x256_diffusion_uncond.pt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from adm_layout import random_adm_state_dict
from helpers import TINY_CLIP, compose_config
from PIL import Image

from editing.editors.blended import BlendedEditor
from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import from_uint8
from editing.models.adm_flags import ADMFlags
from editing.models.clip import build_clip, save_clip
from editing.models.unconditional import load_adm_model

TINY = dict(
    image_size=32,
    num_channels=32,
    num_res_blocks=1,
    channel_mult="1,2,2",
    attention_resolutions="16,8",
    num_head_channels=16,
)
R = 32


@pytest.fixture(scope="module")
def adm_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("adm") / "tiny_uncond.pt"
    torch.save(random_adm_state_dict(ADMFlags(**TINY), seed=4), path)
    return path


@pytest.fixture(scope="module")
def model(adm_file):
    return load_adm_model(str(adm_file), name="adm256", **TINY)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    torch.manual_seed(0)
    return str(save_clip(build_clip(TINY_CLIP), tmp_path_factory.mktemp("clip")))


def _pixels() -> np.ndarray:
    rgb = np.random.default_rng(0).integers(0, 255, (R, R, 3), dtype=np.uint8)
    rgb[8:24, 8:24] = (200, 30, 30)
    return rgb


def _mask() -> torch.Tensor:
    m = torch.zeros(1, 1, R, R)
    m[..., 8:24, 8:24] = 1
    return m


def test_the_model_is_unconditional_with_learned_variance_and_adm_betas(model):
    assert not model.text_conditioned and model.learned_variance and not model.is_latent
    assert model.resolution == 32 and model.num_train_timesteps == 1000
    betas = 1 - model.alphas_cumprod / torch.cat([torch.ones(1), model.alphas_cumprod[:-1]])
    expected = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert torch.allclose(betas.double(), expected, rtol=1e-3, atol=1e-7)
    empty = model.encode_prompt(["", ""])
    assert empty.shape == (2, 0, 0)
    x = torch.randn(2, 3, R, R)
    with torch.no_grad():
        eps, v = model.eps_with_variance(x, 500, empty)
        raw = model.unet(x, torch.tensor([500, 500])).sample
    assert torch.equal(eps, raw[:, :3]) and torch.equal(v, raw[:, 3:])
    assert model.identity.name == "adm256"
    with pytest.raises(UserInputError, match="is unconditional") as err:
        model.encode_prompt(["a cat"], "target_prompt")
    assert "\n" not in str(err.value) and "target_prompt" in str(err.value)


def test_blended_edits_only_inside_the_mask_with_the_learned_variance(model, clip_dir):
    editor = BlendedEditor(
        num_timesteps=6, skip_timesteps=1, num_augmentations=2, num_candidates=2, clip_path=clip_dir
    )
    inputs = Inputs(image=from_uint8(_pixels()), mask=_mask(), target_prompt="a red ball", seed=0)
    results = editor(model, inputs)
    assert len(results) == 2
    keep = _mask()[0, 0] == 0
    for r in results:
        assert r.image.shape == (3, R, R) and r.params["variance"] == "learned"
        assert torch.equal(r.image[:, keep], inputs.image.pixels[0][:, keep])
        assert not torch.equal(r.image[:, ~keep], inputs.image.pixels[0][:, ~keep])


FAST = [
    "method.num_timesteps=5",
    "method.skip_timesteps=1",
    "method.num_augmentations=2",
    "method.num_candidates=1",
]


def _cfg(tmp_path, adm_file, clip_dir, *extra, method="blended", settings=FAST):
    Image.fromarray(_pixels()).save(tmp_path / "image.png")
    Image.fromarray((_mask()[0, 0].numpy() * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    quoted = ("channel_mult", "attention_resolutions")
    flags = [
        f"base_model.{k}='{v}'" if k in quoted else f"base_model.{k}={v}" for k, v in TINY.items()
    ]
    return compose_config(
        "edit",
        [
            f"method={method}",
            "base_model=adm256",
            f"base_model.path={adm_file}",
            *flags,
            f"image={tmp_path / 'image.png'}",
            f"mask={tmp_path / 'mask.png'}",
            "target_prompt=a red ball",
            f"output_dir={tmp_path / 'out'}",
            "device=cpu",
            *settings,
            f"++clip.path={clip_dir}",
            *extra,
        ],
    )


def test_edit_py_blended_on_adm256_keeps_the_background_exactly(tmp_path, adm_file, clip_dir):
    from editing_app.commands.edit import edit

    out = edit(_cfg(tmp_path, adm_file, clip_dir, "method.text_condition=false"))
    source = np.asarray(Image.open(tmp_path / "image.png"))
    keep = np.asarray(Image.open(tmp_path / "mask.png")) == 0
    result = np.asarray(Image.open(out))
    assert np.array_equal(result[keep], source[keep])  # bitwise, after PNG
    assert not np.array_equal(result[~keep], source[~keep])


@pytest.mark.parametrize(
    "method, extra, match",
    [
        ("direct_inversion", ["source_prompt=a cat"], "use method=blended with"),
        ("blended", ["method.text_condition=true"], "set method.text_condition=false"),
    ],
)
def test_methods_that_need_text_refuse_adm256_in_one_line(
    tmp_path, adm_file, clip_dir, method, extra, match
):
    from editing_app.commands.edit import edit

    settings = FAST if method == "blended" else []
    cfg = _cfg(tmp_path, adm_file, clip_dir, *extra, method=method, settings=settings)
    with pytest.raises(UserInputError, match=match) as err:
        edit(cfg)
    message = str(err.value)
    assert "\n" not in message and "'adm256' is unconditional" in message
    assert not (tmp_path / "out").exists()


def test_loader_refusals(adm_file):
    with pytest.raises(UserInputError, match="base_model.path is empty"):
        load_adm_model(None)
    with pytest.raises(
        UserInputError, match="base_model.num_chanels is not a guided-diffusion flag"
    ):
        load_adm_model(str(adm_file), num_chanels=32)
    with pytest.raises(UserInputError, match="class-conditional"):
        load_adm_model(str(adm_file), **TINY, class_cond=True)
