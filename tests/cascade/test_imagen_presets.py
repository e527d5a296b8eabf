"""Imagen-style defaults on pixel cascades: the paper's embedding schedule for stage=imagic_cascade
and x0 clipping of the base stage's samples."""

from __future__ import annotations

from helpers import compose_config

from demo_world.tiny import build_tiny_model
from demo_world.tiny_if import build_tiny_if
from editing.editors.imagic import ImagicEditor


def test_the_cascade_stage_uses_the_papers_imagen_embedding_schedule():
    stage = compose_config("train", ["stage=imagic_cascade", "output_dir=/tmp/o"]).stage
    assert (stage.embed.num_steps, stage.embed.lr) == (100, 1e-3)
    assert stage.finetune.num_steps == 1500 and stage.sr_finetune.num_steps == 1500
    # the Stable Diffusion schedule stays the default of stage=imagic
    plain = compose_config("train", ["stage=imagic", "output_dir=/tmp/o"]).stage
    assert (plain.embed.num_steps, plain.embed.lr) == (1000, 2e-3)


def test_base_sampling_clips_x0_on_pixel_cascades_only():
    auto = ImagicEditor()
    assert auto.clips_x0(build_tiny_if())
    assert not auto.clips_x0(build_tiny_model(latent=False))
    assert not auto.clips_x0(build_tiny_model())
    assert ImagicEditor(clip_x0=True).clips_x0(build_tiny_model())
    assert not ImagicEditor(clip_x0=False).clips_x0(build_tiny_if())
