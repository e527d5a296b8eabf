"""Tampered but well-formed artifacts are refused in one line before use: a tensor of the wrong
shape or width, a missing tensor, a metadata number that is not one, NaN values."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_config
from safetensors.torch import load_file

from demo_world.tiny import build_tiny_model
from editing.editors.imagic import ImagicEditor
from editing.editors.null_text_p2p import NullTextP2PEditor
from editing.errors import UserInputError
from editing.io.artifacts import read_metadata, save_artifact
from editing.io.edit_inputs import Inputs
from editing.models.unet_weights import finetuned_unet

QUICK = ["base_model=tiny", "trainer=cpu", "logger=none", "callbacks=none"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Real 2-step imagic and null-text artifacts of the tiny model."""
    from PIL import Image

    from editing_app.commands.train import train

    folder = tmp_path_factory.mktemp("artifacts")
    image = folder / "input.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(image)
    common = [*QUICK, f"image={image}", f"output_dir={folder}"]
    train(
        compose_config(
            "train",
            [
                *common,
                "stage=imagic",
                "target_prompt=a blue square",
                "stage.embed.num_steps=2",
                "stage.finetune.num_steps=2",
            ],
        )
    )
    train(
        compose_config(
            "train",
            [
                *common,
                "stage=null_text",
                "source_prompt=a red square",
                "stage.num_inference_steps=2",
                "stage.num_inner_steps=1",
            ],
        )
    )
    return folder


def _tampered(src, dst_dir, change_tensors=None, change_meta=None):
    """A copy of artifact `src` in dst_dir with its tensors / metadata changed."""
    tensors, meta = load_file(str(src)), read_metadata(src)
    if change_tensors:
        change_tensors(tensors)
    if change_meta:
        change_meta(meta)
    dst_dir.mkdir(parents=True, exist_ok=True)
    save_artifact(dst_dir / src.name, tensors, meta)
    return dst_dir


def _imagic_edit(model, folder):
    editor = ImagicEditor(finetuned=False, num_inference_steps=2, seeds=[0])
    return editor(model, Inputs(checkpoint_dir=folder))


def test_untampered_artifacts_edit(trained):
    model = build_tiny_model()
    assert len(_imagic_edit(model, trained)) == 1
    editor = NullTextP2PEditor(num_inference_steps=2, reconstruction=True)
    assert len(editor(model, Inputs(checkpoint_dir=trained))) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda t: t.__setitem__("e_opt", t["e_opt"][..., :-1].clone()),
            "tensor 'e_opt' has shape",
        ),
        (lambda t: t.__setitem__("e_opt", torch.full_like(t["e_opt"], float("nan"))), "NaN"),
        (lambda t: t.pop("e_tgt"), "no tensor 'e_tgt'"),
    ],
    ids=["narrow-e_opt", "nan-e_opt", "missing-e_tgt"],
)
def test_a_tampered_imagic_embedding_is_refused(trained, tmp_path, change, message):
    folder = _tampered(trained / "imagic_embed.safetensors", tmp_path, change)
    with pytest.raises(UserInputError, match=message):
        _imagic_edit(build_tiny_model(), folder)


@pytest.mark.parametrize(
    "change_tensors, change_meta, message",
    [
        (lambda t: t.pop("z_T"), None, "no tensor 'z_T'"),
        (
            lambda t: t.__setitem__("null_embeddings", t["null_embeddings"][..., :8].clone()),
            None,
            "tensor 'null_embeddings' has shape",
        ),
        (
            None,
            lambda m: m.__setitem__("guidance_scale", "abc"),
            "guidance_scale='abc' is not a number",
        ),
    ],
    ids=["missing-z_T", "narrow-nulls", "guidance-abc"],
)
def test_a_tampered_null_text_inversion_is_refused(
    trained, tmp_path, change_tensors, change_meta, message
):
    folder = _tampered(trained / "null_text.safetensors", tmp_path, change_tensors, change_meta)
    editor = NullTextP2PEditor(num_inference_steps=2)
    with pytest.raises(UserInputError, match=message):
        editor(build_tiny_model(), Inputs(checkpoint_dir=folder, target_prompt="a blue square"))


def test_a_fine_tuned_weight_of_the_wrong_shape_is_refused(trained):
    model = build_tiny_model()
    tensors = load_file(str(trained / "imagic_finetune.safetensors"))
    meta = read_metadata(trained / "imagic_finetune.safetensors")
    key = next(k for k, v in tensors.items() if k.startswith("unet.") and v.dim() == 4)
    tensors[key] = tensors[key][:, :-1].clone()
    with pytest.raises(UserInputError, match="has shape"):
        finetuned_unet(model.unet, tensors, meta)
