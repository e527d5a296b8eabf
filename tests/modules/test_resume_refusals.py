"""Resuming a stage: a checkpoint made from other content is refused, the same content resumes."""

from __future__ import annotations

import pytest
from helpers import compose_config

from editing.errors import UserInputError
from editing.io.artifacts import load_artifact

QUICK = ["base_model=tiny", "trainer=cpu", "logger=none", "callbacks.preview=null"]


def test_resume_refuses_a_checkpoint_made_for_another_prompt(image_path, tmp_path):
    from editing_app.commands.train import train

    common = [
        *QUICK,
        "stage=imagic_embed",
        f"image={image_path}",
        f"output_dir={tmp_path}",
        "callbacks.checkpoint_every_n_steps=1",
        "callbacks.checkpoint_time_share=null",
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
