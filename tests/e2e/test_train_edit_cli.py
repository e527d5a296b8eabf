"""train.py -> edit.py end to end, as users run them (subprocess), plus resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import compose_config
from PIL import Image

from editing.io.artifacts import load_artifact

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICK = ["base_model=tiny", "trainer=cpu", "callbacks=none", "logger=none"]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_imagic_train_then_edit(image_path, tmp_path):
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    r = run(
        "train.py",
        "stage=imagic",
        f"image={image_path}",
        "target_prompt=a red circle",
        f"output_dir={ckpt}",
        "trainer.max_steps=2",
        *QUICK,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for stage in ("imagic_embed", "imagic_finetune"):
        assert (ckpt / f"{stage}.safetensors").is_file()
    r = run(
        "edit.py",
        "method=imagic",
        "base_model=tiny",
        f"checkpoint_dir={ckpt}",
        f"output_dir={out}",
        "method.eta=[0.0,0.7]",
        "method.seeds=[0,1]",
        "method.num_inference_steps=3",
        f"image={image_path}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    samples = sorted(p.name for p in (out / "samples").iterdir())
    assert samples == [
        "000_eta=0_seed=0.png",
        "001_eta=0_seed=1.png",
        "002_eta=0.7_seed=0.png",
        "003_eta=0.7_seed=1.png",
    ]
    for name in ("edit.png", "grid.png", "config.yaml"):
        assert (out / name).is_file()
    png = Image.open(out / "samples" / "002_eta=0.7_seed=0.png")
    assert png.text["prompt"] == "a red circle" and json.loads(png.text["eta"]) == 0.7
    assert png.size == (32, 32)
    grid = Image.open(out / "grid.png")
    assert grid.width == 5 * 160  # input + 4 results


def test_interrupted_stage_resumes_to_the_same_artifact(image_path, tmp_path):
    from editing_app.commands.train import train

    common = [
        *QUICK[:1],
        "trainer=cpu",
        "logger=none",
        "callbacks.preview=null",
        "stage=imagic_embed",
        "stage.lr=0.01",
        f"image={image_path}",
        "target_prompt=a red circle",
    ]
    train(
        compose_config(
            "train",
            [
                *common,
                f"output_dir={tmp_path / 'straight'}",
                "trainer.max_steps=4",
                "callbacks.checkpoint_every_n_steps=0",
            ],
        )
    )
    interrupted = tmp_path / "resumed"
    train(
        compose_config(
            "train",
            [
                *common,
                f"output_dir={interrupted}",
                "trainer.max_steps=2",
                "callbacks.checkpoint_every_n_steps=1",
                "callbacks.checkpoint_time_share=null",
            ],
        )
    )
    assert (interrupted / "checkpoints" / "imagic_embed" / "last.ckpt").is_file()
    ckpt = torch.load(interrupted / "checkpoints" / "imagic_embed" / "last.ckpt", weights_only=True)
    assert set(ckpt["state_dict"]) == {"e_opt", "e_tgt"}  # no frozen base weights in checkpoints
    train(
        compose_config(
            "train",
            [
                *common,
                f"output_dir={interrupted}",
                "trainer.max_steps=4",
                "callbacks.checkpoint_every_n_steps=1",
                "callbacks.checkpoint_time_share=null",
                "resume=true",
            ],
        )
    )
    a = load_artifact(tmp_path / "straight" / "imagic_embed.safetensors", "imagic_embed")
    b = load_artifact(interrupted / "imagic_embed.safetensors", "imagic_embed")
    assert torch.equal(a["e_opt"], b["e_opt"])


@pytest.mark.parametrize(
    "config,overrides",
    [
        ("train", ["stage=imagic"]),
        ("train", ["stage=imagic_embed"]),
        ("train", ["stage=imagic_finetune"]),
        ("train", ["stage=imagic_ports"]),
        ("train", ["stage=imagic_lora"]),
        ("train", ["stage=pretrain_demo", "base_model=demo_init"]),
        ("train", ["trainer=gpu"]),
        ("train", ["trainer=ddp"]),
        ("train", ["trainer=fsdp"]),
        ("train", ["logger=tensorboard"]),
        ("train", ["base_model=sd15"]),
        ("train", ["base_model=sd21"]),
        ("train", ["base_model=tiny_v"]),
        ("train", ["base_model=demo"]),
        ("edit", ["method=imagic"]),
    ],
)
def test_configs_compose(config, overrides):
    cfg = compose_config(config, [*overrides, "output_dir=/tmp/x"])
    assert cfg.output_dir == "/tmp/x"
    from omegaconf import OmegaConf

    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
