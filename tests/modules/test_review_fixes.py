"""Regression tests for the review findings: resume content keys, truncated stages, modes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import compose_config, fit_stage
from PIL import Image

from demo_world.tiny import build_tiny_model
from editing.errors import UserInputError
from editing.io.artifacts import load_artifact
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image

QUICK = ["base_model=tiny", "trainer=cpu", "logger=none", "callbacks.preview=null"]


def test_resume_refuses_a_checkpoint_made_for_another_prompt(image_path, tmp_path):
    from train import train

    common = [
        *QUICK,
        "stage=imagic_embed",
        f"image={image_path}",
        f"output_dir={tmp_path}",
        "callbacks.checkpoint_every_n_steps=1",
    ]
    train(compose_config("train", [*common, "target_prompt=a red circle", "trainer.max_steps=2"]))
    with pytest.raises(
        UserInputError,
        match="target_prompt: checkpoint has 'a red circle', this run has 'a blue square'",
    ):
        train(
            compose_config(
                "train",
                [*common, "target_prompt=a blue square", "trainer.max_steps=4", "resume=true"],
            )
        )
    # the same content resumes fine, and the artifact records the steps that actually ran
    train(
        compose_config(
            "train", [*common, "target_prompt=a red circle", "trainer.max_steps=4", "resume=true"]
        )
    )
    art = load_artifact(tmp_path / "imagic_embed.safetensors", "imagic_embed")
    assert art.metadata["steps_run"] == "4" and art.hparams["num_steps"] == 1000


def test_null_text_cannot_be_cut_short_silently(image_path, tmp_path):
    from train import train

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
    stage._trainer = SimpleNamespace(world_size=2, strategy=None)
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


def test_preview_keeps_frozen_components_in_eval_mode(image_path, tmp_path):
    from callbacks.preview import EditPreview
    from lightning_modules.imagic import ImagicEmbedStage

    model = build_tiny_model()
    stage = ImagicEmbedStage(
        model, Inputs(image=load_image(image_path, 32), target_prompt="a cat"), num_steps=2
    )
    fit_stage(stage, model, stage.inputs, 1)
    stage.train()
    model.text_encoder.eval()
    trainer = SimpleNamespace(
        is_global_zero=True, log_dir=str(tmp_path), default_root_dir=str(tmp_path)
    )
    preview = EditPreview(every_n_steps=1, num_inference_steps=2)
    preview._render(trainer, stage, 1)
    assert preview.saved and preview.saved[0].is_file()
    assert stage.training and not model.text_encoder.training


def test_preview_skips_modules_without_previews(tmp_path):
    # The CLIP pretraining has nothing to render; the default callbacks must not stop it.
    from callbacks.preview import EditPreview
    from lightning_modules.clip_pretrain import PretrainClipStage

    trainer = SimpleNamespace(
        is_global_zero=True, log_dir=str(tmp_path), default_root_dir=str(tmp_path)
    )
    preview = EditPreview(every_n_steps=1, num_inference_steps=2)
    preview._render(trainer, PretrainClipStage(), 1)
    assert preview.saved == [] and not (tmp_path / "previews").exists()


def test_float_images_need_an_unambiguous_range(tmp_path):
    Image.fromarray(np.full((20, 20), 0.5, dtype=np.float32), "F").save(tmp_path / "ok.tiff")
    assert load_image(tmp_path / "ok.tiff", 16).pixels.abs().max() < 0.01  # 0.5 -> mid gray
    Image.fromarray(np.full((20, 20), 200.0, dtype=np.float32), "F").save(tmp_path / "bad.tiff")
    with pytest.raises(UserInputError, match="outside \\[0, 1\\]"):
        load_image(tmp_path / "bad.tiff", 16)
