"""How many threads a CPU run uses (`cpu_threads=auto|N`).

PyTorch's OpenMP pool defaults to one thread per core. When another process keeps a core busy,
its threads wait on the one that lost its core at every parallel region, and a 2-core run slows
down 10-100x. `auto` therefore counts the cores other processes are using right now (from two
reads of /proc/stat, 0.2 s apart) and gives the run the rest, at least one. An explicit
`OMP_NUM_THREADS` in the environment is the user's choice and is kept.
"""

from __future__ import annotations

import logging
import os
import time

import torch

from editing.errors import UserInputError

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 0.2


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores from /proc/stat; None where it does not exist."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user/nice
    return total - idle, total


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float:
    """How many cores' worth of work the machine did over the next `seconds` (this process sleeps
    meanwhile, so it is the others' work); 0 where /proc/stat cannot be read."""
    first = _cpu_times()
    time.sleep(seconds)
    second = _cpu_times()
    if first is None or second is None or second[1] <= first[1]:
        return 0.0
    return (os.cpu_count() or 1) * (second[0] - first[0]) / (second[1] - first[1])


def threads_for(setting: int | str, cores: int, busy: float) -> int:
    """The thread count for `cpu_threads=setting` on `cores` usable cores, `busy` of them taken."""
    if setting != "auto":
        return int(setting)
    return max(1, min(cores, cores - round(busy)))


def check_cpu_threads(setting: object, key: str = "cpu_threads") -> None:
    """Refuse anything but `auto` or a whole number >= 1, in one line."""
    if setting != "auto" and (
        isinstance(setting, bool) or not isinstance(setting, int) or setting < 1
    ):
        raise UserInputError(f"{key} must be auto or a whole number >= 1, got {setting!r}")


def set_cpu_threads(setting: int | str = "auto") -> int:
    """Apply `cpu_threads=` to PyTorch's intra-op pool; returns the thread count in use."""
    check_cpu_threads(setting)
    if setting == "auto" and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cores = usable_cores()
    busy = busy_cores() if setting == "auto" else 0.0
    threads = threads_for(setting, cores, busy)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    if setting == "auto" and threads < cores:
        log.info(
            "cpu_threads=auto: %d of %d cores are busy with other work; using %d thread%s",
            round(busy),
            cores,
            threads,
            "s" if threads > 1 else "",
        )
    return threads
