"""The performance report: every method/stage benchmark, one table, machine and commands named.

    python -m benchmarks.report                          # tiny on CPU; + full size if CUDA exists
    python -m benchmarks.report --device cpu --quick     # smoke counts only (seconds per script)
    python -m benchmarks.report --json out.json --markdown out.md

Runs `benchmarks.imagic`, `benchmarks.null_text`, `benchmarks.direct_inversion`,
`benchmarks.blended` (and `benchmarks.cascade` when that module exists) each in its own Python
process (so a failure stops only that script, and each CPU peak-RSS figure is that script's own):
always with the tiny models on the CPU, and with `--device cuda` (the default when a GPU is
present) also at full size on the GPU (SD 1.5 at 512 px; for pixel Blended Diffusion the 552.8M
ADM-style UNet at 256 px with a ViT-B/16 CLIP). Each script prints its own table as it goes; the
report then prints one table of every row (seconds, steps/s where a row says how many steps it
timed, peak memory, notes), the machine, and the exact command each row came from, and can write
the same as JSON and as Markdown (the README's "where each number came from").

A further benchmark module is picked up when listed in `OPTIONAL`; it may define
`report_argv(device: str, quick: bool) -> list[str] | None` (None: skip on that device). Without
it the report passes `--device D`, plus `--arch tiny` on the CPU and `--quick` when its `--help`
lists them.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from benchmarks.common import Row

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("imagic", "null_text", "direct_inversion", "blended")
OPTIONAL = ("cascade", "memory")


@dataclass
class Run:
    """One benchmark process: what ran, where, and what it measured."""

    benchmark: str
    device: str
    argv: list[str]
    returncode: int | None = None
    machine: str = ""
    seconds: float = float("nan")
    rows: list[Row] = field(default_factory=list)

    @property
    def command(self) -> str:
        return shlex.join(["python", "-m", f"benchmarks.{self.benchmark}", *self.argv])


def machine_line() -> str:
    """CPU model, cores and threads, GPU (if any), library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = os.environ.get("OMP_NUM_THREADS") or str(torch.get_num_threads())
    parts = [f"CPU: {cpu}, {os.cpu_count()} cores, {threads} torch threads"]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        parts.append(f"GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB)")
    import diffusers

    parts.append(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"python {platform.python_version()}"
    )
    return "; ".join(parts)


def _help_text(name: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    return result.stdout


def benchmark_argv(name: str, device: str, quick: bool) -> list[str] | None:
    """The arguments the report gives benchmark `name` on `device` (None: not run there)."""
    cpu = device == "cpu"
    quick_flag = ["--quick"] if quick else []
    if name == "imagic":  # no --quick: >= 4 steps (2 warm-up steps, then timed ones)
        if cpu:
            return ["--arch", "tiny", "--device", "cpu"] + (["--steps", "6"] if quick else [])
        return ["--arch", "sd15", "--device", "cuda", "--steps", "6" if quick else "60"]
    if name in BENCHMARKS:
        return ["--arch", "tiny" if cpu else "sd15", "--device", device, *quick_flag]
    module = importlib.import_module(f"benchmarks.{name}")
    if hasattr(module, "report_argv"):
        return module.report_argv(device, quick)
    options = set(re.findall(r"--[a-z][a-z0-9-]*", _help_text(name)))
    argv = ["--device", device]
    if cpu and "--arch" in options:
        argv += ["--arch", "tiny"]
    if quick and "--quick" in options:
        argv.append("--quick")
    return argv


def available(only: list[str] | None) -> list[str]:
    names = list(BENCHMARKS)
    names += [n for n in OPTIONAL if importlib.util.find_spec(f"benchmarks.{n}") is not None]
    return [n for n in names if not only or n in only]


def run_one(run: Run, folder: Path, timeout: float | None) -> Run:
    """Run one benchmark process; its rows come back through its --json file."""
    out = folder / f"{run.benchmark}-{run.device}.json"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    print(f"\n=== {run.command}", flush=True)
    start = datetime.datetime.now()
    try:
        result = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{run.benchmark}", *run.argv, "--json", str(out)],
            cwd=ROOT,
            env=env,
            timeout=timeout,
        )
        run.returncode = result.returncode
    except subprocess.TimeoutExpired:
        run.returncode = -9
        print(f"=== {run.benchmark} on {run.device}: timed out after {timeout} s", flush=True)
    run.seconds = (datetime.datetime.now() - start).total_seconds()
    if run.returncode == 0 and out.exists():
        data = json.loads(out.read_text())
        run.machine = data.get("machine", "")
        run.rows = [Row(**row) for row in data["rows"]]
    elif run.returncode == 0:
        run.returncode = -1  # exited cleanly without writing its rows
    return run


def steps_per_second(row: Row) -> float:
    """Steps per second where the row says how many steps its seconds cover, else NaN."""
    if row.unit == "s/step":
        return 1.0 / row.seconds if row.seconds > 0 else float("nan")
    steps = row.extra.get("steps")
    if isinstance(steps, str) and re.fullmatch(r"\d+(\+\d+)*", steps):
        steps = sum(int(s) for s in steps.split("+"))
    if row.unit == "s" and isinstance(steps, (int, float)) and row.seconds > 0:
        return float(steps) / row.seconds
    return float("nan")


def _fmt(value: float, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _notes(row: Row) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.extra.items()
    )


def table_lines(runs: list[Run]) -> list[str]:
    """The combined table as aligned text lines."""
    lines = [
        f"{'benchmark':30s} {'setting':48s} {'time':>10s} {'unit':6s} {'steps/s':>8s} "
        f"{'peak MB':>8s}  notes"
    ]
    for run in runs:
        for r in run.rows:
            lines.append(
                f"{r.benchmark:30s} {r.setting:48s} {_fmt(r.seconds):>10s} {r.unit:6s} "
                f"{_fmt(steps_per_second(r)):>8s} {_fmt(r.peak_memory_mb, 5):>8s}  {_notes(r)}"
            )
        if run.returncode != 0:
            lines.append(f"{run.benchmark:30s} {run.device:48s} FAILED (exit {run.returncode})")
    return lines


def markdown(runs: list[Run], header: dict[str, str]) -> str:
    """The report as Markdown: provenance, one table, the command of every row."""
    out = [
        "### Performance report",
        "",
        f"Generated by `{header['command']}` on {header['date']} (git {header['git']}).",
        "",
        f"Machine: {header['machine']}.",
        "",
    ]
    if header.get("quick") == "yes":
        out += ["Quick run: smoke-check step counts, not the paper schedules.", ""]
    out += [
        "| benchmark | setting | time | unit | steps/s | peak MB | notes |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for run in runs:
        for r in run.rows:
            out.append(
                f"| {r.benchmark} | {r.setting} | {_fmt(r.seconds)} | {r.unit} | "
                f"{_fmt(steps_per_second(r))} | {_fmt(r.peak_memory_mb, 5)} | {_notes(r)} |"
            )
        if run.returncode != 0:
            out.append(
                f"| {run.benchmark} | {run.device} | failed (exit {run.returncode}) | | | | |"
            )
    out += [
        "",
        "Where each number came from (run by the report, in this order, one process each):",
        "",
    ]
    for run in runs:
        out.append(f"- `{run.command}` ({_fmt(run.seconds, 3)} s wall)")
    out += [
        "",
        "Peak memory: CUDA max allocated per measurement; on the CPU the process's max resident "
        "set size (an upper bound that only grows within a script). 32-true on CUDA runs fp32 "
        "matmuls as TF32 (`torch.set_float32_matmul_precision('high')`, as train.py does); "
        "bf16-mixed is bf16 autocast over fp32 weights. Full-size models have random weights: "
        "speed and memory do not depend on them.",
        "",
    ]
    return "\n".join(out)


def _git() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        return (sha or "unknown") + (" + local changes" if dirty else "")
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        choices=["cpu", "cuda"],
        help="cpu: tiny models only; cuda: also full size on the GPU",
    )
    parser.add_argument("--quick", action="store_true", help="smoke-check counts in every script")
    parser.add_argument("--only", nargs="+", default=None, help="benchmark names to run")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per script")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible (use --device cpu)")
    command = shlex.join(
        ["python", "-m", "benchmarks.report", *(sys.argv[1:] if argv is None else argv)]
    )
    header = {
        "command": command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": _git(),
        "machine": machine_line(),
        "quick": "yes" if args.quick else "no",
    }
    names = available(args.only)
    devices = ["cpu"] + (["cuda"] if args.device == "cuda" else [])
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            for name in names:
                bench_argv = benchmark_argv(name, device, args.quick)
                if bench_argv is not None:
                    runs.append(run_one(Run(name, device, bench_argv), Path(tmp), args.timeout))
    print(f"\nPerformance report\n{header['machine']}\n{command}\n")
    print("\n".join(table_lines(runs)))
    print("\nCommands:\n" + "\n".join(f"  {r.command}" for r in runs))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            **header,
            "runs": [
                {**asdict(r), "command": r.command, "rows": [asdict(row) for row in r.rows]}
                for r in runs
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(runs, header))
    failed = [r for r in runs if r.returncode != 0]
    if failed:
        print("\nFAILED: " + ", ".join(f"{r.benchmark} ({r.device})" for r in failed))
        if argv is None:
            sys.exit(1)
    return [row for r in runs for row in r.rows]


if __name__ == "__main__":
    main()
