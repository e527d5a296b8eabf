"""Atomic file writes beside their target, the clean-up of what a killed write leaves, and the
named write phases tests kill a process at.

`atomic_file(path, kind)` yields a temporary path in the target's own folder
(`.<name>.<random>.tmp`); once the caller has written it, it is fsynced, renamed over `path`
with `os.replace` (atomic within one filesystem, which a temp file in the same folder always is)
and the folder is fsynced. The temporary file is removed on every exit path, exceptions,
`KeyboardInterrupt` and `SystemExit` included, so readers see the old file or the complete new
one, never a part. Only a hard kill (SIGKILL, power loss) can leave a temporary file behind:
`remove_partial_files(folder)` removes those, and every run calls it on its folders first.

Kill points: with the environment variable `EDITING_KILL_AT=<kind>:<phase>[@N]` the process
SIGKILLs itself the N-th time (default the first) a write of that kind reaches that phase:
`before_temp_write`, `after_temp_write` (temp complete and fsynced, not renamed yet),
`after_rename`. Kinds: `artifact`, `checkpoint`. Tests use it to interrupt a run at an exact
moment instead of sleeping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

KILL_ENV = "EDITING_KILL_AT"
PHASES = ("before_temp_write", "after_temp_write", "after_rename")
_reached: Counter[str] = Counter()


def kill_point(kind: str, phase: str) -> None:
    """SIGKILL this process if `EDITING_KILL_AT` names this write phase (test hook)."""
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    point = f"{kind}:{phase}"
    if name != point:
        return
    _reached[point] += 1
    if _reached[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def partial_name_prefix(target: str | Path) -> str:
    return f".{Path(target).name}."


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path, kind: str, mode: int | None = 0o666) -> Iterator[Path]:
    """Yield a temporary path beside `path`; after the block, fsync it and rename it over `path`.

    `mode` (before the umask) is the new file's permission: `mkstemp` creates 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=partial_name_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        kill_point(kind, "before_temp_write")
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if mode is not None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, mode & ~umask)
        kill_point(kind, "after_temp_write")
        os.replace(tmp, path)
        _fsync_folder(path.parent)
        kill_point(kind, "after_rename")
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes, kind: str) -> Path:
    """`path.write_bytes(data)`, atomically (see `atomic_file`)."""
    with atomic_file(path, kind) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def partial_files(folder: str | Path, target_glob: str = "*") -> list[Path]:
    """The temporary files interrupted atomic writes left in `folder` (`.<target>.*.tmp`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f".{target_glob}.*.tmp") if p.is_file())


def remove_partial_files(folder: str | Path, target_glob: str = "*") -> list[Path]:
    """Remove what killed atomic writes left in `folder`; returns the paths removed."""
    removed = []
    for p in partial_files(folder, target_glob):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed
