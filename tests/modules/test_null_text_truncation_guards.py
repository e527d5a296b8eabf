"""A null-text inversion is never cut short silently: the stage refuses to stop early, to export a
partial trajectory or to split one trajectory across devices, and the editor refuses an
unfinished artifact."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from helpers import compose_config

from demo_world.tiny import build_tiny_model
from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image

QUICK = ["base_model=tiny", "trainer=cpu", "logger=none", "callbacks.preview=null"]


def test_null_text_cannot_be_cut_short_silently(image_path, tmp_path):
    from editing_app.commands.train import train

    args = [
        *QUICK,
        "callbacks.checkpoint_every_n_steps=0",
        "stage=null_text",
        f"image={image_path}",
        "source_prompt=a cat",
        f"output_dir={tmp_path}",
    ]
    with pytest.raises(UserInputError, match="trainer.max_steps counts optimizer steps"):
        train(compose_config("train", [*args, "trainer.max_steps=3"]))
    assert not (tmp_path / "null_text.safetensors").exists()
    from lightning_modules.null_text import NullTextStage

    model = build_tiny_model()
    stage = NullTextStage(
        model,
        Inputs(image=load_image(image_path, 32), source_prompt="a cat"),
        num_inference_steps=3,
        num_inner_steps=1,
    )
    with pytest.raises(UserInputError, match="stopped after 0 of 3 timesteps"):
        stage.artifact()
    stage._trainer = SimpleNamespace(
        world_size=2, strategy=None, precision="32-true", precision_plugin=SimpleNamespace()
    )
    with pytest.raises(UserInputError, match="one trajectory on one device"):
        stage.setup("fit")


def test_editor_refuses_an_unfinished_inversion(image_path, tmp_path):
    from editing.editors.null_text_p2p import NullTextP2PEditor
    from editing.io.artifacts import make_metadata, save_artifact

    model = build_tiny_model()
    meta = make_metadata(
        "null_text",
        model,
        source_prompt="a cat",
        num_inference_steps=3,
        guidance_scale=7.5,
        steps_done=1,
    )
    tensors = {
        "z_T": torch.zeros(1, 4, 8, 8),
        "null_embeddings": torch.zeros(3, 77, 32),
        "timesteps": torch.tensor([667, 334, 1]),
    }
    save_artifact(tmp_path / "null_text.safetensors", tensors, meta)
    editor = NullTextP2PEditor()
    with pytest.raises(
        UserInputError, match=r"unfinished null-text inversion \(1 of 3 timesteps\)"
    ):
        editor(model, Inputs(checkpoint_dir=tmp_path, target_prompt="a dog"))
