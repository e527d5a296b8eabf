"""Peak memory of every training stage under each memory switch.

    python -m benchmarks.memory --arch sd15 --device cuda    # SD 1.5 at 512 px, random weights
    python -m benchmarks.memory --arch sdxl --device cuda --stages "imagic embed" \
        "imagic finetune-full" "imagic finetune-lora"        # SDXL at 1024 px (its stages)
    python -m benchmarks.memory --arch tiny --device cpu     # the suite's reduced size

Each (stage, switch) runs a few optimisation steps through train.py's own builders in a fresh
process, so each figure is that run's own: CUDA peak allocated memory (the 12 GB target), or on a
CPU the process's peak RSS (weights, Python and libraries included: an upper bound, comparable
between rows). `fits_12gb` compares the CUDA figure with 12 GiB; a run out of memory is a row
marked `out_of_memory` without a figure (e.g. SDXL's full fine-tune without switches on a
device too small for it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.architectures import LATENT_ARCHS
from benchmarks.common import Row, peak_memory, print_table, save_rows

STAGES = {
    "imagic embed": ["stage=imagic_embed"],
    "imagic finetune-full": ["stage=imagic_finetune", "stage.finetune_mode=full"],
    "imagic finetune-lora": ["stage=imagic_finetune", "stage.finetune_mode=lora"],
    "null-text": ["stage=null_text", "stage.num_inference_steps=2", "stage.num_inner_steps=2"],
}
# switch name -> (overrides, weights dtype); "half" is bf16 weights (CPU) or fp16 (CUDA, 16-mixed).
SWITCHES = {
    "none": ([], "float32"),
    "checkpointing": (["stage.gradient_checkpointing=true"], "float32"),
    "half weights": ([], "half"),
    "adafactor": (["stage.optimizer=adafactor"], "float32"),
    "all": (["stage.gradient_checkpointing=true", "stage.optimizer=adafactor"], "half"),
}
APPLIES = {  # the optimiser switch matters where the optimiser state is large
    "adafactor": ("imagic finetune-full",),
    "all": ("imagic finetune-full", "imagic finetune-lora"),
}
GIB12 = 12 * 1024
OUT_OF_MEMORY = "OutOfMemoryError"
"""What a run that ran out of (CUDA) memory prints (`torch.OutOfMemoryError`): its row records
it, with no figure, and the other rows go on."""


def measure(arch: str, device: str, stage: str, switch: str, steps: int) -> float:
    """Peak MB of `steps` steps of `stage` with `switch` (run in this process)."""
    from benchmarks.architectures import model_for
    from benchmarks.imagic import _image
    from editing.io.edit_inputs import Inputs
    from editing.io.images import load_image
    from editing_app import training
    from editing_app.configs import compose_config

    overrides, dtype = SWITCHES[switch]
    half = dtype == "half"
    dtype = ("float16" if device == "cuda" else "bfloat16") if half else dtype
    precision = "16-mixed" if half and device == "cuda" else "32-true"
    model = model_for(arch, None, getattr(torch, dtype)).to(device)
    folder = Path(tempfile.mkdtemp())

    def fit(stage_overrides: list[str], n: int) -> None:
        cfg = compose_config(
            "train",
            [
                *stage_overrides,
                f"output_dir={folder}",
                # null-text's length is its own num_inference_steps (trainer.max_steps is refused)
                *([] if "stage=null_text" in stage_overrides else [f"trainer.max_steps={n}"]),
                f"trainer.precision={precision}",
                f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
                "trainer.enable_progress_bar=false",
                "callbacks.checkpoint_every_n_steps=0",
                "logger=none",
                "target_prompt=a photo of a red circle",
                "source_prompt=a photo of a red circle",
                f"image={_image(folder, model.resolution)}",
            ],
        )
        inputs = Inputs(
            image=load_image(cfg.image, model.resolution),
            target_prompt=cfg.target_prompt,
            source_prompt=cfg.source_prompt,
            output_dir=folder,
            checkpoint_dir=folder,
        )
        module = training.build_module(cfg.stage, model, inputs)
        datamodule = training.build_datamodule(cfg.stage, module, model, inputs)
        trainer, _, _ = training.build_trainer(cfg, module.stage, module.trainer_max_steps, folder)
        trainer.fit(module, datamodule=datamodule)

    if "finetune" in stage:  # the fine-tune reads an embedding artifact
        fit(["stage=imagic_embed"], 1)
    with peak_memory(device) as box:
        fit([*STAGES[stage], *overrides], steps)
    return box["mb"]


def report_argv(device: str, quick: bool) -> list[str]:
    """`benchmarks.report`'s command line: SD 1.5 on a GPU, the tiny model on a CPU."""
    argv = ["--device", device, "--arch", "sd15" if device == "cuda" else "tiny"]
    return [*argv, "--stages", "null-text", "--steps", "1"] if quick else argv


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="tiny", choices=LATENT_ARCHS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--stages", nargs="+", default=list(STAGES))
    parser.add_argument("--one", nargs=2, metavar=("STAGE", "SWITCH"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps({"mb": measure(args.arch, args.device, *args.one, args.steps)}))
        return []
    rows = []
    for stage in args.stages:
        for switch in SWITCHES:
            if switch in APPLIES and stage not in APPLIES[switch]:
                continue
            cmd = [sys.executable, "-m", "benchmarks.memory", "--arch", args.arch]
            cmd += ["--device", args.device, "--steps", str(args.steps), "--one", stage, switch]
            root = Path(__file__).resolve().parents[1]
            env = {**os.environ, "PYTHONPATH": str(root)}
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env)
            extra = {"steps": args.steps, "peak": "cuda" if args.device == "cuda" else "rss"}
            if done.returncode and OUT_OF_MEMORY in done.stderr:
                mb = float("nan")  # a measurement: this stage and switch do not fit the device
                extra["out_of_memory"] = "yes"
            elif done.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
            else:
                mb = json.loads(done.stdout.strip().splitlines()[-1])["mb"]
            if args.device == "cuda":
                extra["fits_12gb"] = "yes" if mb < GIB12 else "no"
            rows.append(Row(f"memory {stage}", f"{args.arch} {switch}", mb, "MB", mb, extra))
    print_table(rows, f"Peak memory per stage and switch ({args.arch}, {args.device})")
    if args.json:
        save_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
