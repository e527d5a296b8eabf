"""The prepared GPU check: every stage and method at full size with random weights, one table.

    benchmarks/gpu_check.sh                                   # full mode on a GPU (about 8 minutes)
    python -m benchmarks.gpu_check --markdown runs/gpu_check.md
    python -m benchmarks.gpu_check --reduced --device cpu     # the same plumbing on tiny models

Full mode (`--device cuda`): for each entry of `ARCHITECTURES` (SD 1.5 at 512 px, SD 2.1 at
768 px, the DeepFloyd IF pair, SDXL at 1024 px), the benchmark scripts that apply to it run one
after another, each in its own process (`benchmarks.report.run_one`): Imagic's stages
(embedding, full and LoRA fine-tune; paper schedule extrapolated from the measured rates),
null-text inversion 50 x 10 with Prompt-to-Prompt edits, Direct Inversion 100 + 100, Blended
Latent Diffusion with 4 candidates and pixel Blended Diffusion at 256 px, all under bf16-mixed,
`benchmarks.memory`'s peak memory with and without the memory switches (checkpointing, half
weights, Adafactor, all), and on SD 1.5 `benchmarks.unet_switches` (one UNet call under SDPA,
explicit attention and channels_last: which of them helps on the GPU). A time budget
(`--budget`, 480 s) bounds the whole run: a script that would start after it is spent is listed
as skipped. The Markdown file holds the machine, one
table of every row (seconds, steps/s, peak memory), and the targets below with what was
measured against each.

SDXL (`sdxl_model`, 3.5B parameters, random weights) runs the scripts of the methods that run on
it (`SDXL_SCRIPTS`): Imagic (embedding, full and LoRA fine-tunes; LoRA is its default),
null-text inversion + Prompt-to-Prompt, Direct Inversion, Blended Latent Diffusion (no pixel model beside it) and `benchmarks.memory` on
Imagic's and null-text's stages. Its design target is each stage under 24 GB with the memory switches on (the
best row of each stage's memory table, and the inference methods' own peaks). Each of its
processes builds the full model, so it is best run on its own: `--only sdxl` with its own
`--budget`.

Reduced mode (`--reduced`, the test suite runs it on the CPU): the same entries with their tiny
stand-ins and minimal counts, in this process, so the plumbing and every script it calls cannot
rot; its numbers say nothing about a GPU.

Adding an architecture is one `Architecture(...)` line in `ARCHITECTURES` (its `--arch` names at
full size and reduced, and the scripts that apply to it).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.common import Row
from benchmarks.report import Run, _fmt, _notes, machine_line, run_one, steps_per_second


@dataclass(frozen=True)
class Architecture:
    """One model family of the check.

    Attributes:
        label: its name in the table.
        full: `--arch` of the scripts at full size (GPU).
        reduced: `--arch` of its tiny stand-in (reduced mode).
        scripts: the benchmark scripts that apply to it (names of `SCRIPTS`).
    """

    label: str
    full: str
    reduced: str
    scripts: tuple[str, ...] = field(default=())


LATENT_SCRIPTS = ("imagic", "null_text", "direct_inversion", "blended", "memory")
SDXL_SCRIPTS = LATENT_SCRIPTS
"""The scripts of the methods that run on SDXL."""

ARCHITECTURES: list[Architecture] = [
    Architecture("SD 1.5 512 px", "sd15", "tiny", (*LATENT_SCRIPTS, "unet_switches")),
    Architecture("SD 2.1 768 px", "sd21", "tiny_v", ("imagic", "null_text", "direct_inversion")),
    Architecture("DeepFloyd IF pair", "if", "tiny", ("cascade",)),
    Architecture("SDXL 1024 px", "sdxl", "tiny_sdxl", SDXL_SCRIPTS),
]

MEMORY_STAGES = {
    "imagic": ("imagic embed", "imagic finetune-full", "imagic finetune-lora"),
    "null_text": ("null-text",),
}
"""`benchmarks.memory`'s stages of each method's script (its `STAGES`)."""


def memory_stages(scripts: tuple[str, ...], reduced: bool) -> list[str]:
    """The memory stages of the methods among `scripts`, in `MEMORY_STAGES` order; reduced mode:
    one, the first of the last method (null-text where it runs, else Imagic's embedding)."""
    methods = [m for m in MEMORY_STAGES if m in scripts]
    if reduced:
        return [MEMORY_STAGES[methods[-1]][0]]
    return [stage for m in methods for stage in MEMORY_STAGES[m]]


def script_argv(
    script: str,
    arch: str,
    device: str,
    reduced: bool,
    scripts: tuple[str, ...] = LATENT_SCRIPTS,
) -> list[str]:
    """The command-line arguments of `script` for `arch` (full size or reduced), one of the
    architecture's `scripts` (the memory stages follow the methods among them)."""
    bf16 = [] if reduced else ["--precisions", "bf16-mixed"]
    if script == "imagic":
        counts = (
            ["--steps", "4", "--repeat", "1", "--stages", "embed"]
            if reduced
            else ["--steps", "30", "--repeat", "1"]
        )
        return ["--arch", arch, "--device", device, *counts, *bf16]
    if script == "null_text":
        counts = (
            ["--quick", "--steps", "2", "--inner", "2"]
            if reduced
            else ["--repeat", "1", "--edits", "2"]
        )
        return ["--arch", arch, "--device", device, *counts, *bf16]
    if script == "direct_inversion":
        counts = (
            ["--quick", "--inversion-steps", "2", "--inference-steps", "2"]
            if reduced
            else ["--repeat", "1"]
        )
        return ["--arch", arch, "--device", device, *counts, *bf16]
    if script == "blended":
        counts = (
            [
                "--quick",
                "--latent-steps",
                "2",
                "--pixel-steps",
                "3",
                "--skip",
                "1",
                "--augmentations",
                "2",
            ]
            if reduced
            else ["--repeat", "1"]
        )
        return ["--arch", arch, "--device", device, *counts, *bf16]
    if script == "memory":
        counts = ["--steps", "1"] if reduced else ["--steps", "2"]
        stages = ["--stages", *memory_stages(scripts, reduced)]
        return ["--arch", arch, "--device", device, *stages, *counts]
    if script == "unet_switches":  # SDPA, explicit attention and channels_last at full size
        variants = ["sdpa", "channels_last"] if reduced else ["sdpa", "explicit", "channels_last"]
        counts = ["--rounds", "1", "--calls", "1"] if reduced else ["--rounds", "3", "--calls", "5"]
        precision = [] if reduced else ["--precision", "bf16-mixed"]
        return ["--arch", arch, "--device", device, "--variants", *variants, *counts, *precision]
    if script == "cascade":
        counts = ["--steps", "2", "--stages", "embed"] if reduced else ["--steps", "8"]
        return ["--arch", arch, "--device", device, *counts]
    raise ValueError(f"unknown benchmark script {script!r}")


@dataclass(frozen=True)
class Target:
    """A full-size goal on an H100-class GPU: rows of `benchmark` whose setting has `setting` (an
    `--arch` name) as one of its words (all of them: the best row is judged), their `field`
    ("seconds", "per_candidate_s" or "peak_memory_mb") at most `limit`."""

    label: str
    benchmark: str
    setting: str
    field: str
    limit: float


SDXL_MB = 24 * 1024
"""SDXL's design target: every stage under 24 GB with the memory switches on."""

TARGETS = [
    Target("Imagic paper schedule, full fine-tune", "imagic paper schedule", "sd15", "seconds", 90),
    Target(
        "Imagic full fine-tune peak memory (MB)",
        "imagic finetune-full",
        "sd15",
        "peak_memory_mb",
        16 * 1024,
    ),
    Target(
        "Imagic LoRA fine-tune peak memory (MB)",
        "imagic finetune-lora",
        "sd15",
        "peak_memory_mb",
        8 * 1024,
    ),
    Target("null-text inversion 50 x 10", "null-text inversion", "sd15", "seconds", 15),
    Target(
        "null-text inversion peak memory (MB)",
        "null-text inversion",
        "sd15",
        "peak_memory_mb",
        8 * 1024,
    ),
    Target("Prompt-to-Prompt edit", "null-text P2P edit", "sd15", "seconds", 2),
    Target("Direct Inversion 100 + 100", "direct inversion edit", "sd15", "seconds", 4),
    Target("Blended Latent, 4 candidates, 512 px", "blended latent", "sd15", "seconds", 3),
    Target(
        "Blended pixel 256 px, per candidate",
        "blended pixel ranked",
        "adm256",
        "per_candidate_s",
        10,
    ),
    *(
        Target(f"SDXL {label} peak memory (MB)", benchmark, "sdxl", "peak_memory_mb", SDXL_MB)
        for label, benchmark in (
            ("Imagic embedding, best switch", "memory imagic embed"),
            ("Imagic full fine-tune, best switch", "memory imagic finetune-full"),
            ("Imagic LoRA fine-tune, best switch", "memory imagic finetune-lora"),
            ("null-text inversion, best switch", "memory null-text"),
            ("Direct Inversion edit", "direct inversion edit"),
            ("Blended Latent, 4 candidates", "blended latent"),
        )
    ),
]


@dataclass
class Job:
    architecture: Architecture
    run: Run
    skipped: bool = False


def judge(target: Target, rows: list[Row]) -> tuple[float, str]:
    """(best measured value, verdict) of `target` over `rows` ("not measured" without rows)."""
    values = []
    for r in rows:
        if r.benchmark == target.benchmark and target.setting in r.setting.split():
            value = (
                r.extra.get(target.field)
                if target.field not in ("seconds", "peak_memory_mb")
                else getattr(r, target.field)
            )
            if isinstance(value, (int, float)) and value == value:
                values.append(float(value))
    if not values:
        return float("nan"), "not measured"
    best = min(values)
    return best, "met" if best <= target.limit else "missed"


def run_in_process(script: str, argv: list[str], folder: Path) -> Run:
    """One script's `main(argv)` in this process (reduced mode: one import of everything)."""
    run = Run(script, argv[argv.index("--device") + 1], argv)
    start = time.perf_counter()
    try:
        run.rows = importlib.import_module(f"benchmarks.{script}").main(argv)
        run.returncode = 0
    except Exception as err:  # a failure is a row of the table, not the end of the check
        print(f"=== {script} failed: {type(err).__name__}: {err}", flush=True)
        run.returncode = 1
    run.seconds = time.perf_counter() - start
    return run


def markdown(jobs: list[Job], header: dict[str, str], reduced: bool) -> str:
    """The check's report: machine, command, one table of every row, the targets."""
    out = [
        "### GPU check" + (" (reduced mode: tiny models, smoke counts)" if reduced else ""),
        "",
        f"`{header['command']}` on {header['date']}, {header['wall']} s in all.",
        "",
        f"Machine: {header['machine']}.",
        "",
        "| architecture | benchmark | setting | time | unit | steps/s | peak MB | notes |",
        "|---|---|---|---:|---|---:|---:|---|",
    ]
    for job in jobs:
        label = job.architecture.label
        if job.skipped:
            out.append(f"| {label} | {job.run.benchmark} | skipped: time budget spent | | | | | |")
            continue
        for r in job.run.rows:
            out.append(
                f"| {label} | {r.benchmark} | {r.setting} | {_fmt(r.seconds)} | {r.unit} | "
                f"{_fmt(steps_per_second(r))} | {_fmt(r.peak_memory_mb, 5)} | {_notes(r)} |"
            )
        if job.run.returncode != 0:
            out.append(
                f"| {label} | {job.run.benchmark} | failed (exit {job.run.returncode}) | | | | | |"
            )
    rows = [r for job in jobs for r in job.run.rows]
    out += ["", "| target (H100-class GPU) | limit | measured | verdict |", "|---|---:|---:|---|"]
    for target in TARGETS:
        value, verdict = judge(target, rows)
        if reduced:
            verdict = "not judged (reduced mode)"
        out.append(f"| {target.label} | {target.limit:g} | {_fmt(value)} | {verdict} |")
    out += ["", "Commands:", ""] + [f"- `{job.run.command}`" for job in jobs if not job.skipped]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> list[Job]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reduced", action="store_true", help="tiny stand-ins, minimal counts")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check")
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        help="run only the architectures with these --arch names (full or reduced)",
    )
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.reduced and args.device != "cuda":
        parser.error("the full check needs --device cuda (use --reduced on a CPU)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    command = shlex.join(
        ["python", "-m", "benchmarks.gpu_check", *(sys.argv[1:] if argv is None else argv)]
    )
    start = time.perf_counter()
    jobs: list[Job] = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHITECTURES:
            name = arch.reduced if args.reduced else arch.full
            if args.only and arch.full not in args.only and arch.reduced not in args.only:
                continue
            for script in arch.scripts:
                script_args = script_argv(script, name, args.device, args.reduced, arch.scripts)
                spent = time.perf_counter() - start
                if spent > args.budget:
                    jobs.append(Job(arch, Run(script, args.device, script_args), skipped=True))
                    continue
                if args.reduced:
                    run = run_in_process(script, script_args, Path(tmp))
                else:
                    run = run_one(
                        Run(script, args.device, script_args), Path(tmp), args.budget - spent
                    )
                jobs.append(Job(arch, run))
    header = {
        "command": command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_line(),
        "wall": f"{time.perf_counter() - start:.0f}",
    }
    text = markdown(jobs, header, args.reduced)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    return jobs


if __name__ == "__main__":
    main()
