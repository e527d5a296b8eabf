"""The edit-preview callback: frozen components keep their mode, empty previews write nothing."""

from __future__ import annotations

from types import SimpleNamespace

from helpers import fit_stage

from demo_world.tiny import build_tiny_model
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image


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


def test_preview_grid_starts_with_the_input_image(image_path, tmp_path):
    import numpy as np
    from PIL import Image

    from callbacks.preview import EditPreview
    from editing.io.images import to_pil
    from lightning_modules.imagic import ImagicEmbedStage

    model = build_tiny_model()
    image = load_image(image_path, 32)
    stage = ImagicEmbedStage(model, Inputs(image=image, target_prompt="a cat"), num_steps=2)
    trainer = SimpleNamespace(
        is_global_zero=True, log_dir=str(tmp_path), default_root_dir=str(tmp_path)
    )
    preview = EditPreview(every_n_steps=1, num_inference_steps=2)
    preview._render(trainer, stage, 1)
    grid = Image.open(preview.saved[0]).convert("RGB")
    expected = to_pil(image.pixels[0]).resize((160, 160), Image.Resampling.NEAREST)
    assert grid.width == 3 * 160  # input, eta=0, eta=1
    assert np.array_equal(np.asarray(grid.crop((0, 0, 160, 160))), np.asarray(expected))


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
