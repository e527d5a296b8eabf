"""The output folder: same-filesystem staging, up-front writability, one run per folder, no
clutter after kills, one folder per multirun job."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import compose_config
from test_train_edit_cli import REPO_ROOT

from editing.errors import UserInputError
from editing.io import output_dir as output_dir_module
from editing.io.output_dir import LOCK_NAME, claim_output_dir

EDIT = [
    "method=direct_inversion",
    "base_model=tiny",
    "method.num_inversion_steps=2",
    "method.num_inference_steps=2",
    "target_prompt=a blue circle",
]
OUTPUTS = ["config.yaml", "edit.png", "edit_full.png", "grid.png"]


def _edit(image_path, out, *overrides):
    from editing_app.commands.edit import edit

    args = [*EDIT, f"image={image_path}", f"output_dir={out}", *overrides]
    return edit(compose_config("edit", args))


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", **env}
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
    )


# --- 1. an output folder that is a mount point ---------------------------------------------------


def test_output_dir_on_another_filesystem_than_its_parent(tmp_path, image_path, monkeypatch):
    """O is a mount point: a rename between O's tree and anything outside fails with EXDEV."""
    mount = (tmp_path / "mnt").resolve()
    mount.mkdir()

    def on_mount(p) -> bool:
        p = Path(p).resolve()
        return p == mount or mount in p.parents

    real_replace, real_rename = os.replace, os.rename

    def cross_device_guard(real):
        def move(src, dst, *args, **kwargs):
            if on_mount(src) != on_mount(dst):
                raise OSError(errno.EXDEV, "Invalid cross-device link", str(src), None, str(dst))
            return real(src, dst, *args, **kwargs)

        return move

    monkeypatch.setattr(os, "replace", cross_device_guard(real_replace))
    monkeypatch.setattr(os, "rename", cross_device_guard(real_rename))
    path = _edit(image_path, mount)
    assert path == mount / "edit.png" and path.is_file()
    assert sorted(p.name for p in mount.iterdir()) == OUTPUTS  # no staging, no lock left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.png", "mnt"]


# --- 2. writability checked before the work ------------------------------------------------------


def _no_model_load(monkeypatch):
    """Fail the test if the base model is loaded: the refusal must come before it."""
    import demo_world.tiny

    def boom(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(demo_world.tiny, "build_tiny_model", boom)


def test_output_dir_that_is_a_file_is_refused_before_the_model_loads(
    tmp_path, image_path, monkeypatch
):
    _no_model_load(monkeypatch)
    target = tmp_path / "out"
    target.write_text("not a folder")
    with pytest.raises(UserInputError, match="is a file, not a folder"):
        _edit(image_path, target)
    with pytest.raises(UserInputError, match="lies under"):
        _edit(image_path, target / "sub")
    assert target.read_text() == "not a folder"


def test_read_only_output_dir_is_refused_before_the_model_loads(tmp_path, image_path, monkeypatch):
    _no_model_load(monkeypatch)
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        probe = folder / "probe"
        try:
            probe.write_text("x")  # root (or CAP_DAC_OVERRIDE) ignores the mode: simulate it
            probe.unlink()
            real_open = open

            def read_only_open(file, mode="r", *args, **kwargs):
                if Path(file).parent == folder and any(c in mode for c in "wax+"):
                    raise PermissionError(errno.EACCES, "Permission denied", str(file))
                return real_open(file, mode, *args, **kwargs)

            monkeypatch.setattr("builtins.open", read_only_open)
        except PermissionError:
            pass
        with pytest.raises(UserInputError, match="not writable"):
            _edit(image_path, folder)
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []


def test_full_disk_at_the_probe_is_refused_and_nothing_is_left(tmp_path, image_path, monkeypatch):
    _no_model_load(monkeypatch)
    real_open = open

    def full_open(file, mode="r", *args, **kwargs):
        if Path(file).name.startswith(".probe-"):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_open)
    with pytest.raises(UserInputError, match="no space left"):
        _edit(image_path, tmp_path / "a" / "out")
    assert not (tmp_path / "a").exists()


def test_full_disk_during_the_final_write_is_one_line_and_leaves_nothing(
    tmp_path, image_path, monkeypatch
):
    real_write_text = Path.write_text

    def full(self, *args, **kwargs):  # config.yaml is the last file staged
        if self.name == "config.yaml":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "out"
    with pytest.raises(UserInputError, match="no space left on the device") as err:
        _edit(image_path, out)
    assert "\n" not in str(err.value)
    assert not out.exists()  # staging removed, the folder it created too


def test_cli_refuses_an_unwritable_output_dir_in_one_line(tmp_path, image_path):
    target = tmp_path / "file"
    target.write_text("x")
    for script, args in (
        ("edit.py", [*EDIT, f"image={image_path}"]),
        ("train.py", ["stage=imagic_embed", "base_model=tiny", f"image={image_path}"]),
    ):
        r = _run(script, *args, "target_prompt=a cat", f"output_dir={target}")
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2, r.stderr[-2000:]
        assert lines == [f"error: output_dir={target} is a file, not a folder: give a folder path"]


# --- 3. one run per folder -----------------------------------------------------------------------


def test_a_held_lock_refuses_edit_until_it_is_released(tmp_path, image_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'{os.getpid()} holder'.encode()); "
            "print('locked', flush=True); sys.stdin.read()",
            str(out / LOCK_NAME),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserInputError, match=rf"in use by another run \(pid {holder.pid} "):
            _edit(image_path, out)
        assert _visible(out) == []
    finally:
        holder.communicate("")  # the holder ends: the kernel drops its lock
    # its lock file stays behind (a killed holder cannot remove it): it does not block
    assert (out / LOCK_NAME).exists()
    _edit(image_path, out)
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS


def test_a_second_fd_in_this_process_is_refused_and_exceptions_release(tmp_path):
    out = tmp_path / "out"
    with claim_output_dir(out, "first"):
        assert (out / LOCK_NAME).read_text().split() == [str(os.getpid()), "first"]
        with (
            pytest.raises(UserInputError, match=f"pid {os.getpid()} first"),
            claim_output_dir(out, "second"),
        ):
            pass
    assert not out.exists()  # created, nothing written: removed with its lock
    with pytest.raises(RuntimeError), claim_output_dir(out):
        raise RuntimeError("the run failed")
    with claim_output_dir(out):  # released by the exception
        (out / "kept").write_text("x")
    assert [p.name for p in out.iterdir()] == ["kept"]


def test_train_refuses_a_locked_folder(tmp_path, image_path):
    from editing_app.commands.train import train

    out = tmp_path / "ckpt"
    out.mkdir()
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242 train.py\n")
    try:
        cfg = compose_config(
            "train",
            [
                "stage=imagic_embed",
                "base_model=tiny",
                "trainer=cpu",
                "callbacks=none",
                "logger=none",
                f"image={image_path}",
                "target_prompt=a cat",
                f"output_dir={out}",
            ],
        )
        with pytest.raises(UserInputError, match=r"pid 4242 train\.py"):
            train(cfg)
    finally:
        os.close(fd)


def test_secondary_ranks_do_not_lock(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with claim_output_dir(out, "rank0"):
        monkeypatch.setenv("LOCAL_RANK", "1")
        assert output_dir_module._is_secondary_rank()
        with claim_output_dir(out, "rank1"):
            pass
        assert (out / LOCK_NAME).exists()


# --- 4. no clutter after kills -------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["computed", "mid-write", "before-move"])
def test_a_killed_edit_leaves_no_visible_partial_files(tmp_path, image_path, phase):
    out = tmp_path / "out"
    args = [*EDIT, f"image={image_path}", f"output_dir={out}"]
    r = _run("edit.py", *args, EDITING_KILL_AT=phase)
    assert r.returncode == -9, r.stderr[-2000:]
    assert _visible(out) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    if phase != "computed":
        assert [p.name for p in out.glob(".staging-*")], "the kill point was reached while staging"
    # the next run removes the dead run's staging folder and proceeds despite its lock file
    _edit(image_path, out)
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS


def test_staging_of_a_live_process_is_kept(tmp_path):
    from editing.io.outputs import remove_stale_staging

    live = tmp_path / f".staging-{os.getppid()}-abc"
    dead = tmp_path / ".staging-999999999-abc"
    live.mkdir()
    dead.mkdir()
    remove_stale_staging(tmp_path)
    assert live.exists() and not dead.exists()


# --- 6. multirun ---------------------------------------------------------------------------------


def test_multirun_jobs_write_their_own_folders(tmp_path, image_path):
    out = tmp_path / "sweep"
    r = _run(
        "edit.py",
        "-m",
        *EDIT,
        f"image={image_path}",
        "method.guidance_scale=3,5",
        f"output_dir={out}",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for job, scale in (("0", "3"), ("1", "5")):
        assert sorted(p.name for p in (out / job).iterdir()) == OUTPUTS
        config = (out / job / "config.yaml").read_text()
        assert f"guidance_scale: {scale}" in config and f"output_dir: {out / job}" in config
    assert not (out / "edit.png").exists()
