"""Benchmark plumbing: machine description, timers, peak memory, result tables."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch


def machine() -> str:
    """One line naming the hardware and library versions the numbers come from."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = (
            f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        )
    return f"{device}; torch {torch.__version__}; python {platform.python_version()}"


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@contextmanager
def peak_memory(device: torch.device | str):
    """Yields a dict whose "mb" is filled with the peak memory of the block (CUDA: allocated;
    CPU: the process's max RSS, which only ever grows, so CPU figures are upper bounds)."""
    box: dict[str, float] = {}
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    yield box
    if dev.type == "cuda":
        box["mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        import resource

        box["mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_per_call(fn: Callable[[], object], device, warmup: int = 2, repeat: int = 5) -> float:
    """Median seconds of `fn()` after `warmup` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


@dataclass
class Row:
    """One benchmark measurement."""

    benchmark: str
    setting: str
    seconds: float
    unit: str = "s/step"
    peak_memory_mb: float = float("nan")
    extra: dict = field(default_factory=dict)


def print_table(rows: list[Row], title: str) -> None:
    print(f"\n{title}\n{machine()}")
    print(f"{'benchmark':28s} {'setting':34s} {'time':>12s} {'peak MB':>9s}  notes")
    for r in rows:
        notes = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.extra.items()
        )
        print(
            f"{r.benchmark:28s} {r.setting:34s} {r.seconds:9.4f} {r.unit:>2s} {r.peak_memory_mb:9.0f}  {notes}"
        )


def save_rows(rows: list[Row], path) -> None:
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(
        json.dumps({"machine": machine(), "rows": [asdict(r) for r in rows]}, indent=2)
    )
