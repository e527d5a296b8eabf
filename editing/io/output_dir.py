"""The output folder of a run: checked before any work, held by one run at a time.

`claim_output_dir(O)` is what edit.py and train.py enter before their model loads:
- it refuses, in one `UserInputError` line, an O that is a file, lies under a file, is not
  writable or sits on a full disk (it creates O and writes and deletes a probe file in it);
- it takes an exclusive, non-blocking `fcntl.flock` on `O/.lock` (the holder writes its pid into
  it), so a second run into the same O is refused with a line naming the holder's pid. The kernel
  drops the lock when its process dies, so the lock file of a killed run never blocks;
- on exit (normal or by an exception) it deletes `O/.lock` and, when the run wrote nothing, the
  folders it created, so a refused run leaves nothing behind.

Secondary ranks of a distributed run (`LOCAL_RANK`/`RANK` other than 0) write into their rank 0's
folder, which holds the lock: for them the claim does nothing.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from editing.errors import UserInputError

LOCK_NAME = ".lock"


def _is_secondary_rank() -> bool:
    return any(os.environ.get(key, "0") not in ("", "0") for key in ("LOCAL_RANK", "RANK"))


def _os_error_line(path: Path, err: OSError) -> str:
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        return f"no space left on the device of output_dir={path}: free some space or choose another output_dir"
    if err.errno == errno.EROFS:
        return f"output_dir={path} is on a read-only filesystem: choose another output_dir"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"output_dir={path} is not writable (permission denied): choose another output_dir"
    if err.errno == errno.ENOTDIR:
        return f"output_dir={path} lies under a file, not a folder: choose another output_dir"
    reason = err.strerror or type(err).__name__
    return f"cannot write into output_dir={path}: {reason}"


def check_output_dir(path: str | Path) -> list[Path]:
    """Create `path` (and missing parents), write and delete a probe file in it.

    Returns the folders it created (outermost first) so that the caller can remove them when the
    run is refused later. Raises `UserInputError` (one line) for a file, an unwritable folder, a
    read-only filesystem or a full disk; whatever it created is removed first.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"output_dir={path} is a file, not a folder: give a folder path")
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise UserInputError(
                f"output_dir={path} lies under {parent}, which is a file: give a folder path"
            )
        if parent.exists():
            break
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        probe = path / f".probe-{os.getpid()}"
        try:
            with open(probe, "wb") as f:
                f.write(b"probe")
                f.flush()
                os.fsync(f.fileno())
        finally:
            if probe.exists():
                probe.unlink()
    except OSError as err:
        remove_empty(created)
        raise UserInputError(_os_error_line(path, err)) from None
    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (outermost first, as `check_output_dir` returns them) that are empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or gone): its parents are not empty either


def _holder(lock_path: Path) -> str:
    try:
        text = lock_path.read_text().strip()
    except OSError:
        text = ""
    return text or "unknown"


def _lock(path: Path, what: str) -> int:
    """An fd holding the exclusive flock of `path/.lock`; refuses when another process has it."""
    lock_path = path / LOCK_NAME
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserInputError(
                f"output_dir={path} is in use by another run (pid {_holder(lock_path)}, see "
                f"{lock_path}): wait for it to end or choose another output_dir"
            ) from None
        # The previous holder deletes the lock file when it releases: the file we locked must
        # still be the one at lock_path, otherwise lock the new one.
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {what}\n".encode())
            return fd
        os.close(fd)


def _unlock(path: Path, fd: int) -> None:
    lock_path = path / LOCK_NAME
    try:
        if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
            lock_path.unlink()
    except OSError:
        pass
    os.close(fd)


@contextmanager
def claim_output_dir(path: str | Path, what: str = "") -> Iterator[Path]:
    """Check `path` is a writable folder and hold its lock for the duration of the block.

    `what` (e.g. "edit.py") is written beside the pid into the lock file. Yields the folder.
    """
    path = Path(path)
    if _is_secondary_rank():
        yield path
        return
    created = check_output_dir(path)
    try:
        fd = _lock(path, what)
    except BaseException:
        remove_empty(created)
        raise
    try:
        yield path
    finally:
        _unlock(path, fd)
        remove_empty(created)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
