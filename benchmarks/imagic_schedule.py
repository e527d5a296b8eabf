"""Imagic's whole schedule through train.py on a diffusers folder, optionally beside another
implementation run on the same folder.

    python -m benchmarks.imagic_schedule                                  # tiny SD folder, 500 + 1000
    python -m benchmarks.imagic_schedule --model FOLDER --resolution 512 --device cuda
    python -m benchmarks.imagic_schedule --external 'python other.py {model} {embed_steps} {finetune_steps} {image}'

Each project run is `python train.py stage=imagic_ports base_model=sd15 base_model.path=FOLDER
image=IMG target_prompt=... output_dir=TMP` in a fresh process (`--root DIR`, repeatable, chooses
the checkouts: an older version of the project is measured the same way, alternating with this
one; `--override` adds train.py settings).
Its seconds per step are each stage's fit time (StepTimer: first to last step, periodic
checkpoints and previews included) over its steps; `process_s` is the whole command's wall time.

`--external` names a command template run alternately with the project, on the same folder, image
and step counts (`{model}`, `{image}`, `{embed_steps}`, `{finetune_steps}`, `{resolution}` are
filled in); its last output line must be a JSON object with `embed_s_per_step` and
`finetune_s_per_step` (optionally `total_s`, and `embed_cpu_s_per_step` / `finetune_cpu_s_per_step`,
the process CPU time per step, which the project reports too: CPU time is what other load on a
shared machine disturbs least). Without `--model` a tiny random SD folder
(64 px, 8x8 latents, `benchmarks.folders`) is written first. Medians over `--repeat` alternating
runs are reported with their range, and `ratio` = external / project (above 1: the project is
faster).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import Row, print_table, save_rows

ROOT = Path(__file__).resolve().parents[1]
DONE = re.compile(
    r"(imagic_embed|imagic_finetune) done: (\d+) steps in ([0-9.]+) s"
    r"(?: \([0-9.]+ s/step, ([0-9.]+) s CPU\))?"
)
PROMPT = "a photo of a red circle"


def write_image(path: Path, resolution: int, seed: int = 0) -> Path:
    """A seeded random RGB image of `resolution` px (the input both implementations see)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (resolution, resolution, 3), dtype=np.uint8)).save(path)
    return path


def project_command(
    root: Path,
    model: Path,
    image: Path,
    resolution: int,
    embed_steps: int,
    finetune_steps: int,
    output_dir: Path,
    device: str,
    overrides: list[str],
) -> list[str]:
    """The train.py command of one project run."""
    return [
        sys.executable,
        str(root / "train.py"),
        "stage=imagic_ports",
        "base_model=sd15",
        f"base_model.path={model}",
        f"base_model.resolution={resolution}",
        f"image={image}",
        f"target_prompt={PROMPT}",
        f"output_dir={output_dir}",
        f"stage.embed.num_steps={embed_steps}",
        f"stage.finetune.num_steps={finetune_steps}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        f"cpu_threads={os.environ.get('OMP_NUM_THREADS', 'auto')}",
        *overrides,
    ]


def parse_project(output: str, embed_steps: int, finetune_steps: int) -> dict[str, float]:
    """Seconds per step of each stage from train.py's `<stage> done: N steps in X s` lines."""
    found = {stage: (int(n), float(s), c) for stage, n, s, c in DONE.findall(output)}
    if set(found) != {"imagic_embed", "imagic_finetune"}:
        raise RuntimeError(f"train.py did not finish both stages:\n{output[-3000:]}")
    (n_e, s_e, c_e), (n_f, s_f, c_f) = found["imagic_embed"], found["imagic_finetune"]
    if (n_e, n_f) != (embed_steps, finetune_steps):
        raise RuntimeError(f"expected {embed_steps} + {finetune_steps} steps, ran {n_e} + {n_f}")
    result = {"embed_s_per_step": s_e / n_e, "finetune_s_per_step": s_f / n_f, "total_s": s_e + s_f}
    if c_e and c_f:  # versions that print the fit's CPU time
        result["embed_cpu_s_per_step"] = float(c_e) / n_e
        result["finetune_cpu_s_per_step"] = float(c_f) / n_f
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str] | str, shell: bool = False) -> tuple[str, float, float]:
    """(output, wall seconds, CPU seconds) of one command."""
    start, cpu = time.perf_counter(), _children_cpu()
    result = subprocess.run(
        command, shell=shell, capture_output=True, text=True, cwd=ROOT, env=os.environ.copy()
    )
    wall = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"{command!r} failed (exit {result.returncode}):\n{output[-3000:]}")
    return output, wall, cpu


def parse_external(output: str) -> dict[str, float]:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            data = json.loads(line)
            return {k: float(v) for k, v in data.items() if isinstance(v, (int, float))}
    raise RuntimeError(f"the external command printed no JSON line:\n{output[-2000:]}")


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="diffusers folder (SD layout)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--embed-steps", type=int, default=500)
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--root",
        type=Path,
        action="append",
        default=None,
        help="project checkout to run (repeatable: each is run in every round; default this one)",
    )
    parser.add_argument("--override", action="append", default=[], help="extra train.py setting")
    parser.add_argument("--external", default=None, help="command template (see above)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from benchmarks.folders import write_tiny_sd_folder

            model = write_tiny_sd_folder(tmp / "tiny_sd", args.resolution)
        image = write_image(tmp / "image.png", args.resolution)
        fill = {
            "model": shlex.quote(str(model)),
            "image": shlex.quote(str(image)),
            "embed_steps": args.embed_steps,
            "finetune_steps": args.finetune_steps,
            "resolution": args.resolution,
        }
        roots = [r.resolve() for r in (args.root or [ROOT])]
        names = ["project" if r == ROOT else f"project at {r}" for r in roots]
        results: dict[str, list[dict[str, float]]] = {n: [] for n in [*names, "external"]}
        for i in range(args.repeat):
            for root, name in zip(roots, names):
                command = project_command(
                    root,
                    model,
                    image,
                    args.resolution,
                    args.embed_steps,
                    args.finetune_steps,
                    tmp / f"run{i}-{len(results[name])}-{names.index(name)}",
                    args.device,
                    args.override,
                )
                output, wall, cpu = run(command)
                found = parse_project(output, args.embed_steps, args.finetune_steps)
                results[name].append({**found, "process_s": wall, "process_cpu_s": cpu})
                print(f"{name} run {i}: {results[name][-1]}", flush=True)
            if args.external:
                output, wall, cpu = run(args.external.format(**fill), shell=True)
                found = parse_external(output)
                results["external"].append({**found, "process_s": wall, "process_cpu_s": cpu})
                print(f"external run {i}: {results['external'][-1]}", flush=True)
        setting = f"{args.device} {args.resolution}px {args.embed_steps}+{args.finetune_steps}"
        for who, runs in results.items():
            if not runs:
                continue
            for key, label in (("embed_s_per_step", "embed"), ("finetune_s_per_step", "finetune")):
                stats = _summary([r[key] for r in runs])
                extra = {"low": stats["low"], "high": stats["high"], "runs": len(runs)}
                if who != "external" and results["external"]:
                    ext = statistics.median(r[key] for r in results["external"])
                    extra["ratio"] = ext / stats["median"]
                cpu_key = key.replace("_s_per_step", "_cpu_s_per_step")
                if all(cpu_key in r for r in runs):
                    extra["cpu_s_per_step"] = statistics.median(r[cpu_key] for r in runs)
                    ext_runs = results["external"]
                    if who != "external" and ext_runs and all(cpu_key in r for r in ext_runs):
                        ext_cpu = statistics.median(r[cpu_key] for r in ext_runs)
                        extra["cpu_ratio"] = ext_cpu / extra["cpu_s_per_step"]
                rows.append(
                    Row(
                        f"imagic_ports {label} ({who})",
                        setting,
                        stats["median"],
                        "s/step",
                        extra=extra,
                    )
                )
            if all("total_s" in r for r in runs):
                stats = _summary([r["total_s"] for r in runs])
                process = statistics.median(r["process_s"] for r in runs)
                process_cpu = statistics.median(r["process_cpu_s"] for r in runs)
                rows.append(
                    Row(
                        f"imagic_ports training ({who})",
                        setting,
                        stats["median"],
                        "s",
                        extra={
                            "low": stats["low"],
                            "high": stats["high"],
                            "process_s": process,
                            "process_cpu_s": process_cpu,
                        },
                    )
                )
    print_table(rows, f"Imagic schedule on {args.model or 'a tiny random SD folder'}")
    if args.json:
        save_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
