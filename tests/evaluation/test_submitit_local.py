"""The cluster path, run locally: Hydra's submitit launcher (`hydra/launcher=submitit_local`, the
same launcher code as `hydra/launcher=slurm` with submitit's local executor) runs a two-shard
`evaluate.py` multirun and a two-job `train.py` multirun, each job in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the `slurm` extra")

REPO = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    result = subprocess.run(
        [sys.executable, script, "-m", "hydra/launcher=submitit_local", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_evaluate_shards_through_submitit(tmp_path):
    out = tmp_path / "out"
    run(
        "evaluate.py",
        "base_model=tiny",
        "clip=none",
        "method=direct_inversion",
        "method.num_inversion_steps=2",
        "method.num_inference_steps=2",
        "suite=demo",
        "suite.edit_types=[colour,shape]",
        "suite.n=1",
        "suite.num_shards=2",
        "suite.shard=0,1",
        f"output_dir={out}",
    )
    records = {p.parent.name: json.loads(p.read_text()) for p in out.glob("cases/*/result.json")}
    assert sorted(records) == ["colour-000", "shape-000"]
    workers = {(r["worker"]["shard"], r["worker"]["pid"]) for r in records.values()}
    assert {shard for shard, _ in workers} == {0, 1}
    assert len({pid for _, pid in workers}) == 2
    assert all(r["status"] == "ok" for r in records.values())
    assert (out / "summary.csv").is_file()
    # submitit's own job records: one per shard
    assert len(list(out.rglob("*_submitted.pkl"))) == 2


def test_two_train_jobs_through_submitit_each_in_its_own_folder(tmp_path, image_path):
    from safetensors.torch import load_file

    out = tmp_path / "out"
    run(
        "train.py",
        "stage=imagic_embed",
        "base_model=tiny",
        "trainer=cpu",
        "logger=none",
        "callbacks=none",
        f"image={image_path}",
        "target_prompt=a blue square",
        "stage.num_steps=2",
        "seed=0,1",
        f"output_dir={out}",
    )
    artifacts = [out / str(n) / "imagic_embed.safetensors" for n in (0, 1)]
    assert all(a.is_file() for a in artifacts), sorted(p.name for p in out.rglob("*"))
    first, second = (load_file(a) for a in artifacts)
    assert first.keys() == second.keys()
    assert not all((first[k] == second[k]).all() for k in first)  # two seeds, two results
    assert not (out / "imagic_embed.safetensors").exists()
