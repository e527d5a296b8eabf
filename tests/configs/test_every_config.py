"""Every configs/method/*.yaml edits and every configs/stage/*.yaml trains, on a tiny model.

Each method runs through `edit.edit(cfg)` (after the training stage `editing_app.registry` says it
needs, when it needs one) and must write edit.png, grid.png and config.yaml; each stage runs
through `train.train(cfg)` and must write its artifact. Step counts, batch sizes and candidate
counts are cut to the minimum wherever a config has them, so a new YAML is covered as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import compose_config
from omegaconf import DictConfig, open_dict
from PIL import Image

from editing_app.registry import method_names, required_stage, stage_names

# Settings cut to the smallest useful value wherever a method or (sub-)stage has them.
SMALL = {
    "num_steps": 2,
    "num_inference_steps": 2,
    "num_inversion_steps": 2,
    "num_inner_steps": 1,
    "num_timesteps": 2,
    "skip_timesteps": 0,
    "sr_num_inference_steps": 2,
    "num_candidates": 1,
    "num_augmentations": 1,
    "batch_size": 1,
    "warmup_steps": 1,
}
# The base model each config runs on (default: tiny, a latent model).
METHOD_MODEL = {"blended": "tiny_pixel"}  # pixel-space Blended Diffusion
STAGE_MODEL = {
    "imagic_cascade": "tiny_if",
    "imagic_sr_finetune": "tiny_if",
    "pretrain_clip": "none",
    "pretrain_demo": "demo_init",
    "pretrain_demo_sr": "demo",
}
# Stages that read an earlier stage's artifact from checkpoint_dir.
STAGE_BEFORE = {"imagic_finetune": "imagic_embed"}
TRAIN = ["trainer=cpu", "callbacks=none", "logger=none"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    y, x = np.mgrid[0:32, 0:32]
    rgb = np.stack([x * 7, y * 7, (x + y) * 3], axis=-1).astype(np.uint8)
    rgb[8:24, 8:24] = (220, 30, 30)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    Image.fromarray(rgb).save(folder / "image.png")
    Image.fromarray(mask).save(folder / "mask.png")
    return {"image": folder / "image.png", "mask": folder / "mask.png"}


def shrink(node: DictConfig) -> None:
    """Cut SMALL's settings in `node` and in every sub-stage node it runs."""
    with open_dict(node):
        for key, value in SMALL.items():
            if key in node and node[key] is not None:
                node[key] = value
    for sub in node.get("sequence") or []:
        shrink(node[sub])


def run_train(stage: str, base_model: str, files, output_dir: Path) -> list[Path]:
    from editing_app.commands.train import train

    cfg = compose_config(
        "train",
        [
            f"stage={stage}",
            f"base_model={base_model}",
            *TRAIN,
            # no base model (pretrain_clip): no image to load at its resolution
            *([] if base_model == "none" else [f"image={files['image']}", f"mask={files['mask']}"]),
            "source_prompt=a red square",
            "target_prompt=a blue square",
            f"output_dir={output_dir}",
        ],
    )
    shrink(cfg.stage)
    return train(cfg)


@pytest.mark.parametrize("method", method_names())
def test_method_config_edits(method, files, tmp_path):
    from editing_app.commands.edit import edit

    base_model = METHOD_MODEL.get(method, "tiny")
    cfg = compose_config(
        "edit",
        [
            f"method={method}",
            f"base_model={base_model}",
            "device=cpu",
            f"image={files['image']}",
            f"mask={files['mask']}",
            "source_prompt=a red square",
            "target_prompt=a blue square",
            f"checkpoint_dir={tmp_path / 'ckpt'}",
            f"output_dir={tmp_path / 'out'}",
        ],
    )
    shrink(cfg.method)
    stage = required_stage(cfg.method)
    if stage is not None:  # the artifact it edits from, from a tiny training run
        assert run_train(stage, base_model, files, tmp_path / "ckpt")
    path = edit(cfg)
    assert path == tmp_path / "out" / "edit.png"
    for name in ("edit.png", "grid.png", "config.yaml"):
        assert (tmp_path / "out" / name).is_file(), name


@pytest.mark.parametrize("stage", stage_names())
def test_stage_config_trains(stage, files, tmp_path):
    base_model = STAGE_MODEL.get(stage, "tiny")
    if stage in STAGE_BEFORE:
        run_train(STAGE_BEFORE[stage], base_model, files, tmp_path)
    paths = run_train(stage, base_model, files, tmp_path)
    assert paths
    for path in paths:
        assert Path(path).exists(), path
    cfg = compose_config("train", [f"stage={stage}"]).stage
    names = [cfg[s].name for s in cfg.sequence] if "sequence" in cfg else [cfg.name]
    if not stage.startswith("pretrain"):  # pretraining stages write a model folder
        assert [Path(p).name for p in paths] == [f"{n}.safetensors" for n in names]
