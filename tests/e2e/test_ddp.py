"""DDP with 2 CPU processes (gloo): trains, exports one artifact, ranks draw different noise."""

from __future__ import annotations

import torch
from test_train_edit_cli import run

from editing.io.artifacts import load_artifact

ARGS = [
    "stage=imagic_embed",
    "base_model=tiny",
    "target_prompt=a red circle",
    "stage.lr=0.01",
    "callbacks=none",
    "logger=none",
    "trainer.max_steps=2",
]


def test_ddp_on_two_cpu_processes(image_path, tmp_path):
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    r = run(
        "train.py",
        *ARGS,
        f"image={image_path}",
        f"output_dir={ddp}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in ddp.iterdir()) == [
        "imagic_embed.safetensors"
    ]  # one artifact, nothing else
    r = run("train.py", *ARGS, f"image={image_path}", f"output_dir={single}", "trainer=cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    a = load_artifact(ddp / "imagic_embed.safetensors", "imagic_embed")
    b = load_artifact(single / "imagic_embed.safetensors", "imagic_embed")
    # rank 0 draws the single-process noise, rank 1 its own: averaged gradients differ
    assert not torch.equal(a["e_opt"], b["e_opt"])
    assert torch.equal(a["e_tgt"], b["e_tgt"])
