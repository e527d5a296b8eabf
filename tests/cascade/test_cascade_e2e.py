"""Tiny IF cascade end to end: train.py stage=imagic_cascade -> edit.py method=imagic, sr modes."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_config
from PIL import Image

from demo_world.tiny_if import build_tiny_if
from editing.editors.imagic import ImagicEditor
from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing.models.cascade import upscale_output, with_sr

QUICK = ["base_model=tiny_if", "trainer=cpu", "callbacks=none", "logger=none"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(checkpoint dir, image path) of a 2-step-per-stage `stage=imagic_cascade` run."""
    import numpy as np

    from editing_app.commands.train import train

    folder = tmp_path_factory.mktemp("cascade")
    y, x = np.mgrid[0:40, 0:48]
    rgb = np.stack([x * 5, y * 6, (x + y) * 3], axis=-1).astype(np.uint8)
    rgb[10:25, 12:30] = (220, 30, 30)
    image = folder / "input.png"
    Image.fromarray(rgb).save(image)
    cfg = compose_config(
        "train",
        [
            *QUICK,
            "stage=imagic_cascade",
            f"image={image}",
            "image_fit=center_crop",  # these tests compare square crops (tests/geometry: others)
            "target_prompt=a red circle",
            f"output_dir={folder / 'D'}",
            "trainer.max_steps=2",
            "stage.sr_finetune.lr=1e-2",
        ],
    )
    paths = train(cfg)
    names = [p.name for p in paths]
    assert names == [
        f"{s}.safetensors" for s in ("imagic_embed", "imagic_finetune", "imagic_sr_finetune")
    ]
    return folder / "D", image


def _edit(ckpt, out, *overrides):
    from editing_app.commands.edit import edit

    cfg = compose_config(
        "edit",
        [
            "base_model=tiny_if",
            "method=imagic",
            f"checkpoint_dir={ckpt}",
            f"output_dir={out}",
            "method.num_inference_steps=3",
            "method.sr_num_inference_steps=3",
            "image_fit=center_crop",
            *overrides,
        ],
    )
    return edit(cfg)


@pytest.mark.parametrize("sr", ["finetuned", "pretrained", "none"])
def test_edit_writes_super_resolved_results(trained, tmp_path, sr):
    ckpt, image = trained
    path = _edit(ckpt, tmp_path / sr, f"method.sr={sr}", "method.seeds=[0,1]", f"image={image}")
    png = Image.open(path)
    assert png.size == (32, 32) and png.text["sr"] == sr
    assert Image.open(path.parent / "edit_full.png").size == (48, 40)
    assert len(list((tmp_path / sr / "samples").iterdir())) == 2


def _inputs(ckpt, image):
    return Inputs(image=load_image(image, 16), checkpoint_dir=ckpt)


def _images(results):
    return torch.stack([r.image for r in results])


def test_finetuned_pretrained_and_none_differ_as_they_should(trained):
    ckpt, image = trained
    model, inputs = build_tiny_if(), _inputs(*trained)
    fast = {"num_inference_steps": 3, "sr_num_inference_steps": 3, "seeds": [0, 1]}
    # the base stage alone, sampled as on the cascade (x0 clipped: clip_x0=auto there)
    base = _images(ImagicEditor(clip_x0=True, **fast)(with_sr(model, None), inputs))
    none = _images(ImagicEditor(sr="none", **fast)(model, inputs))
    # sr=none is exactly the base output upsampled (bicubic) to the SR resolution.
    assert base.shape == (2, 3, 16, 16) and torch.equal(none, upscale_output(base, 32))
    tuned = _images(ImagicEditor(sr="finetuned", **fast)(model, inputs))
    pretrained = _images(ImagicEditor(sr="pretrained", **fast)(model, inputs))
    assert tuned.shape == pretrained.shape == (2, 3, 32, 32)
    assert not torch.equal(tuned, pretrained)  # the fine-tuned SR weights are used
    again = _images(ImagicEditor(sr="finetuned", **fast)(model, inputs))
    assert torch.equal(tuned, again)  # seeded


def test_sr_artifact_refuses_another_sr_stage_or_none(trained):
    ckpt, image = trained
    model, inputs = build_tiny_if(), _inputs(*trained)
    fast = {"num_inference_steps": 2, "sr_num_inference_steps": 2}
    other = with_sr(model, build_tiny_if(seed=1).sr)
    with pytest.raises(UserInputError, match="sr_model: artifact has 'tiny_if-sr32-seed0'"):
        ImagicEditor(sr="finetuned", **fast)(other, inputs)
    bigger = with_sr(model, build_tiny_if(sr_resolution=64).sr)
    with pytest.raises(UserInputError, match="sr_config_hash"):
        ImagicEditor(sr="finetuned", **fast)(bigger, inputs)
    for sr in ("finetuned", "pretrained", "none"):
        with pytest.raises(UserInputError, match="no super-resolution stage"):
            ImagicEditor(sr=sr, **fast)(with_sr(model, None), inputs)
    with pytest.raises(UserInputError, match="method.sr='best' is not one of"):
        ImagicEditor(sr="best")


def test_missing_sr_artifact_says_how_to_make_it(trained, tmp_path):
    import shutil

    ckpt, image = trained
    partial = tmp_path / "D"
    shutil.copytree(ckpt, partial)
    (partial / "imagic_sr_finetune.safetensors").unlink()
    with pytest.raises(UserInputError, match="stage=imagic_sr_finetune.*method.sr=pretrained"):
        ImagicEditor(num_inference_steps=2)(build_tiny_if(), _inputs(partial, image))


def test_deepfloyd_if_config_loads_saved_folders_and_reuses_the_artifacts(trained, tmp_path):
    """base_model=deepfloyd_if path=... sr_path=...: IF's loading path (T5, DDPM->DDIM scheduler
    conversion, image-noising scheduler) on a saved tiny IF cascade; same identities, so the
    artifacts trained on base_model=tiny_if apply."""
    from editing.models.loading import save_model, save_sr_model

    model = build_tiny_if()
    save_model(model, tmp_path / "IF-I")
    save_sr_model(model.sr, tmp_path / "IF-II")
    ckpt, image = trained
    cfg = [
        "base_model=deepfloyd_if",
        f"base_model.path={tmp_path / 'IF-I'}",
        f"base_model.sr_path={tmp_path / 'IF-II'}",
        f"base_model.name={model.name}",
        f"base_model.sr_name={model.sr.name}",
        "base_model.max_prompt_tokens=16",
    ]
    from editing_app.commands.edit import edit

    overrides = [*cfg, "method=imagic", f"checkpoint_dir={ckpt}", f"output_dir={tmp_path / 'if'}"]
    overrides += ["method.num_inference_steps=3", "method.sr_num_inference_steps=3"]
    png = Image.open(edit(compose_config("edit", overrides)))
    assert png.size == (32, 32) and png.text["sr"] == "finetuned"


@pytest.mark.parametrize(
    "config,overrides",
    [
        ("train", ["stage=imagic_cascade", "base_model=deepfloyd_if"]),
        ("train", ["stage=imagic_sr_finetune", "base_model=demo_cascade"]),
        ("train", ["stage=pretrain_demo_sr", "base_model=demo"]),
        ("edit", ["method=imagic", "base_model=tiny_if", "method.sr=none"]),
    ],
)
def test_cascade_configs_compose(config, overrides):
    from omegaconf import OmegaConf

    cfg = compose_config(config, [*overrides, "output_dir=/tmp/x"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
