"""Kills, full disks and bad checkpoints: what a run leaves behind and how the next one copes.

The kill tests run `train.py` as a subprocess with `EDITING_KILL_AT=<kind>:<phase>[@N]`, which
makes the process SIGKILL itself at that named write phase (`editing.io.atomic.kill_point`).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import compose_config

from editing.errors import UserInputError
from editing.io.artifacts import load_artifact
from editing.io.atomic import PHASES, partial_files

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGE = "imagic_embed"


def stage_args(image: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"stage={STAGE}",
        "base_model=tiny",
        f"image={image}",
        "target_prompt=a blue square",
        f"output_dir={out}",
        "trainer=cpu",
        "logger=none",
        "callbacks.preview=null",
        "stage.num_steps=3",
        "callbacks.checkpoint_every_n_steps=3",
        "callbacks.checkpoint_time_share=null",
        *extra,
    ]


def train_cli(*args: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    if kill_at:
        env["EDITING_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def all_partials(folder: Path) -> list[Path]:
    return [p for d in [folder, *folder.rglob("*")] if d.is_dir() for p in partial_files(d)]


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_artifact(path, STAGE).tensors


def test_resume_at_the_final_step_writes_the_artifact_from_the_checkpoint(image_path, tmp_path):
    from editing_app.commands.train import train

    out = tmp_path / "out"
    cfg = compose_config("train", stage_args(image_path, out))
    train(cfg)
    artifact = out / f"{STAGE}.safetensors"
    straight = artifact.read_bytes()
    artifact.unlink()
    train(compose_config("train", stage_args(image_path, out, "resume=true")))
    assert artifact.is_file()
    resumed = tensors(artifact)
    artifact.write_bytes(straight)
    reference = tensors(artifact)
    assert set(resumed) == set(reference)
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key


def test_a_kill_at_any_artifact_write_phase_leaves_the_old_artifact_or_the_new(
    image_path, tmp_path
):
    out = tmp_path / "out"
    artifact = out / f"{STAGE}.safetensors"
    # No artifact yet: a kill with the new one complete but not renamed leaves none.
    r = train_cli(*stage_args(image_path, out), kill_at="artifact:after_temp_write")
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert not artifact.exists()
    assert partial_files(out)  # the kill left its temporary file ...
    r = train_cli(*stage_args(image_path, out, "resume=true"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert all_partials(out) == []  # ... which the next run removed
    reference = tensors(artifact)
    for phase in PHASES:
        r = train_cli(*stage_args(image_path, out), kill_at=f"artifact:{phase}")
        assert r.returncode == -signal.SIGKILL, (phase, r.stderr[-2000:])
        # The old or the new artifact, complete (same seed: the same tensors either way).
        got = tensors(artifact)
        assert all(torch.equal(got[k], reference[k]) for k in reference), phase
        r = train_cli(*stage_args(image_path, out, "resume=true"))
        assert r.returncode == 0, (phase, r.stderr[-2000:])
        assert all_partials(out) == [], phase
        got = tensors(artifact)
        assert all(torch.equal(got[k], reference[k]) for k in reference), phase


def test_a_kill_while_a_checkpoint_is_written_keeps_the_previous_one(image_path, tmp_path):
    out = tmp_path / "out"
    every_step = stage_args(image_path, out, "callbacks.checkpoint_every_n_steps=1")
    ckpt = out / "checkpoints" / STAGE / "last.ckpt"
    r = train_cli(*every_step, kill_at="checkpoint:after_temp_write@2")
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert torch.load(ckpt, weights_only=True)["global_step"] == 1  # step 1's, intact
    assert partial_files(ckpt.parent)  # step 2's temporary file
    r = train_cli(*every_step, "resume=true")
    assert r.returncode == 0, r.stderr[-2000:]
    assert all_partials(out) == []
    assert torch.load(ckpt, weights_only=True)["global_step"] == 3
    assert (out / f"{STAGE}.safetensors").is_file()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_a_corrupt_checkpoint_is_refused_in_one_line(image_path, tmp_path, content):
    from editing_app.commands.train import train

    out = tmp_path / "out"
    ckpt = out / "checkpoints" / STAGE / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(content)
    with pytest.raises(UserInputError) as err:
        train(compose_config("train", stage_args(image_path, out, "resume=true")))
    message = str(err.value)
    assert str(ckpt) in message and "delete it or run with resume=false" in message
    assert "\n" not in message


def test_a_corrupt_checkpoint_ends_the_cli_with_one_line(image_path, tmp_path):
    out = tmp_path / "out"
    ckpt = out / "checkpoints" / STAGE / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    r = train_cli(*stage_args(image_path, out, "resume=true"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(ckpt) in errors[0] and "resume=false" in errors[0]


def test_the_same_run_twice_writes_the_same_bytes(image_path, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        r = train_cli(*stage_args(image_path, out))
        assert r.returncode == 0, r.stderr[-2000:]
    name = f"{STAGE}.safetensors"
    assert (a / name).read_bytes() == (b / name).read_bytes()


class _WritesMarker:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_pretrain_export_refuses_a_checkpoint_that_runs_code(tmp_path):
    marker = tmp_path / "marker"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _WritesMarker(marker)}, ckpt)
    # The payload is real: an unrestricted load would run it.
    pickle.loads(pickle.dumps(_WritesMarker(tmp_path / "proof")))
    assert (tmp_path / "proof").read_text() == "ran"
    r = subprocess.run(
        [sys.executable, "-m", "lightning_modules.pretrain", str(ckpt), str(tmp_path / "out")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert not marker.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and str(ckpt) in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_stage_that_fails_before_its_first_step_leaves_no_log_folder(
    image_path, tmp_path, monkeypatch
):
    from editing_app.commands.train import train
    from lightning_modules.imagic import ImagicEmbedStage

    def fail(self, batch, batch_idx):
        raise RuntimeError("failed in the first step")

    monkeypatch.setattr(ImagicEmbedStage, "training_step", fail)
    out = tmp_path / "out"
    args = stage_args(image_path, out, "logger=csv")
    with pytest.raises(RuntimeError, match="failed in the first step"):
        train(compose_config("train", args))
    assert not (out / "logs").exists()
    # the run created out/ and wrote nothing into it: the output-folder claim removes it again
    assert not out.exists()


@pytest.mark.parametrize("kind", ["file", "under_a_file"])
def test_an_output_dir_that_cannot_hold_files_is_refused_before_the_model_loads(
    image_path, tmp_path, monkeypatch, kind
):
    import hydra

    from editing_app.commands.train import train

    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    out = blocker if kind == "file" else blocker / "out"
    loaded = []
    real = hydra.utils.instantiate
    monkeypatch.setattr(
        hydra.utils, "instantiate", lambda *a, **k: loaded.append(a) or real(*a, **k)
    )
    with pytest.raises(UserInputError, match="output_dir=") as err:
        train(compose_config("train", stage_args(image_path, out)))
    assert "\n" not in str(err.value)
    assert loaded == []  # refused before the base model was built
    assert blocker.read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any folder")
def test_an_output_dir_this_user_cannot_write_is_refused(image_path, tmp_path):
    from editing_app.commands.train import train

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(UserInputError, match="is not writable"):
            train(compose_config("train", stage_args(image_path, locked / "out")))
    finally:
        locked.chmod(0o700)
