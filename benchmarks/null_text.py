"""Null-text inversion benchmark: inversion time, inner iterations used, per-edit time, overhead.

    python -m benchmarks.null_text                                   # tiny model on CPU
    python -m benchmarks.null_text --arch sd15 --device cuda         # SD 1.5 at 512 px (GPU)
    python -m benchmarks.null_text --quick                           # smoke check (seconds)

What is measured (one process, one model, one random input image, seconds by wall clock with
CUDA synchronised at the ends):
- `null_text_inversion` over the full schedule (`--steps` DDIM steps x `--inner` Adam steps, no
  early stop), pivot included: the median of `--repeat` runs after a short warm-up run;
- the same function with the reference early stop, once: the inner iterations it actually used;
- the UNet calls that inversion makes, timed alone with the same shapes, dtypes and autocast:
  `--steps` forwards of the pivot, then per step one conditional forward, `--inner`
  forward + backward passes (gradient w.r.t. the null embedding only) and the advance forward.
  overhead_pct = (inversion - UNet calls) / UNet calls by wall time, and on the CPU
  cpu_overhead_pct by process CPU time, which other processes loading the machine hardly move
  (issue target: <= 15 % on the tiny model on CPU). The two are timed alternately (ABBA);
- `train.py stage=null_text` through train.py's own builders (Lightning, default callbacks, CSV
  logging, artifact export), the same schedule without early stop: `trainer.fit` against the
  plain function timed right after it (vs_function_pct; cpu_vs_function_pct on the CPU);
- a further Prompt-to-Prompt edit from that artifact (`NullTextP2PEditor`, one target prompt
  batched with the source, decode included): the median of `--edits` calls after one warm-up.
Peak memory: CUDA max allocated per measurement; on CPU the process's max RSS (an upper bound).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.architectures import LATENT_ARCHS, attention_kind, autocast, model_for, prepare
from benchmarks.common import Row, peak_memory, print_table, save_rows, sync
from editing.diffusion.conditioning import Conditioning
from editing.diffusion.ddim import make_schedule
from editing.inversion.null_text import NullTextSettings, null_text_inversion
from editing.io.edit_inputs import Inputs
from editing.io.images import from_uint8

SOURCE = "a photo of a red circle"
TARGET = "a photo of a blue circle"


def random_image(resolution: int, seed: int = 0):
    """A `LoadedImage` of random pixels (speed does not depend on the content)."""
    rng = np.random.default_rng(seed)
    return from_uint8(rng.integers(0, 255, (resolution, resolution, 3), dtype=np.uint8))


def timed(fn, device) -> tuple[float, float, object, float]:
    """(wall seconds, peak MB, result, process CPU seconds) of one call of `fn`. CPU seconds
    hardly move when other processes load the machine (one torch thread): the CPU overhead
    figures use them; on CUDA only the wall time means anything."""
    with peak_memory(device) as peak:
        sync(device)
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        sync(device)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return seconds, peak["mb"], result, cpu


def median(runs: list[tuple], key: int) -> tuple:
    """The run whose element `key` is the median."""
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def run_inversion(model, z0, steps: int, settings: NullTextSettings, device, precision):
    """(seconds, peak MB, Inversion, CPU seconds) of one `null_text_inversion`."""

    def call():
        with autocast(device, precision):
            return null_text_inversion(model, z0, SOURCE, steps, settings)

    return timed(call, device)


def run_unet_calls(model, z0, steps: int, inner: list[int], device, precision):
    """(wall seconds, CPU seconds) of exactly the UNet calls of a null-text inversion, made alone.

    `steps` no-grad forwards with the source embedding (the pivot), then for step i: one no-grad
    conditional forward, `inner[i]` forward + backward passes w.r.t. a fp32 null embedding (as
    `optimize_step`), one no-grad forward with the null embedding (the advance).
    """
    unet, dtype = model.unet, model.dtype
    schedule = make_schedule(model.scheduler, steps).to(device)
    x = z0.to(device, dtype)
    cond = model.unet_conditioning(model.encode_condition([SOURCE]).to(device), x)
    empty = model.encode_condition([""]).to(device)
    null = nn.Parameter(empty.tokens.clone())

    def null_cond() -> dict:  # the null token embeddings (SDXL: beside the empty pooled one)
        return model.unet_conditioning(Conditioning(null, empty.pooled), x)

    timesteps = [torch.full((1,), int(t), device=device) for t in schedule.timesteps]
    grad_out = torch.randn(x.shape, device=device, dtype=torch.float32)
    sync(device)
    c0, t0 = time.process_time(), time.perf_counter()
    with autocast(device, precision):
        with torch.no_grad():
            for t in reversed(timesteps):  # the pivot (DDIM inversion, w = 1)
                unet(x, t, return_dict=False, **cond)
        for i, t in enumerate(timesteps):
            with torch.no_grad():
                unet(x, t, return_dict=False, **cond)
            for _ in range(inner[i]):
                null.grad = None
                out = unet(x, t, return_dict=False, **null_cond())[0]
                out.float().backward(grad_out)
            with torch.no_grad():
                unet(x, t, return_dict=False, **null_cond())
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def run_stage(model, image, steps: int, inner: int, device, precision, folder: Path):
    """`train.py stage=null_text` through its builders: (fit seconds, peak MB, fit CPU seconds,
    timer summary).

    The image goes in as `Inputs` (as `train.train` builds them from `image=PATH`)."""
    from editing_app import training as train_cli
    from editing_app.configs import compose_config

    folder.mkdir(parents=True, exist_ok=True)
    cfg = compose_config(
        "train",
        [
            "stage=null_text",
            f"stage.num_inference_steps={steps}",
            f"stage.num_inner_steps={inner}",
            "stage.early_stop=false",
            f"output_dir={folder}",
            f"trainer.precision={precision}",
            f"trainer.accelerator={'gpu' if torch.device(device).type == 'cuda' else 'cpu'}",
            "trainer.enable_progress_bar=false",
            f"source_prompt={SOURCE}",
        ],
    )
    inputs = Inputs(image=image, source_prompt=SOURCE, output_dir=folder, checkpoint_dir=folder)
    module = train_cli.build_module(cfg.stage, model, inputs)
    datamodule = train_cli.build_datamodule(cfg.stage, module, model, inputs)
    trainer, export, timer = train_cli.build_trainer(
        cfg, module.stage, module.trainer_max_steps, folder
    )
    seconds, peak, _, cpu = timed(lambda: trainer.fit(module, datamodule=datamodule), device)
    if export.path is None:
        raise RuntimeError("the null_text stage wrote no artifact")
    return seconds, peak, cpu, timer.summary()


def run_edits(model, image, folder: Path, repeat: int, device, precision):
    """Median (seconds, peak MB) of a Prompt-to-Prompt edit from the stage's artifact."""
    from editing.editors.null_text_p2p import NullTextP2PEditor

    editor = NullTextP2PEditor(inversion="null_text", target_prompts=[TARGET])
    inputs = Inputs(image=image, source_prompt=SOURCE, checkpoint_dir=folder)

    def call():
        with autocast(device, precision):
            return editor(model, inputs)

    call()  # warm-up (kernels, allocator)
    runs = sorted((timed(call, device)[:2] for _ in range(repeat)), key=lambda r: r[0])
    return runs[len(runs) // 2]


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="tiny", choices=LATENT_ARCHS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (50; quick: 4)")
    parser.add_argument(
        "--inner", type=int, default=None, help="Adam steps per step (10; quick: 3)"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed inversions (CPU 3; CUDA, quick: 1)"
    )
    parser.add_argument("--edits", type=int, default=None, help="timed edits (3; quick: 1)")
    parser.add_argument("--precisions", nargs="+", default=None, help="32-true / bf16-mixed")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--quick", action="store_true", help="minimal counts (smoke check)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    quick = args.quick
    steps = args.steps or (4 if quick else 50)
    inner = args.inner if args.inner is not None else (3 if quick else 10)
    repeat = args.repeat or (1 if quick or torch.device(args.device).type == "cuda" else 3)
    edits = args.edits or (1 if quick else 3)
    device = args.device
    precisions = args.precisions or (
        ["32-true", "bf16-mixed"] if torch.device(device).type == "cuda" else ["32-true"]
    )

    model = prepare(model_for(args.arch, args.resolution), device, args.channels_last, args.compile)
    image = random_image(model.resolution)
    z0 = model.encode_image(image.pixels.to(device))
    flags = "".join([" compile" if args.compile else "", " cl" if args.channels_last else ""])
    attn = attention_kind(model)
    full = NullTextSettings(num_inner_steps=inner, early_stop=False)
    early = NullTextSettings(num_inner_steps=inner, early_stop=True)
    rows: list[Row] = []
    on_cpu = torch.device(device).type == "cpu"
    for precision in precisions:
        setting = f"{args.arch} {device} {precision}{flags}"
        # 1. Warm-up, then the full schedule and its UNet calls alone, interleaved.
        run_inversion(model, z0, 2, NullTextSettings(num_inner_steps=2), device, precision)
        inversions, unet_calls = [], []
        for k in range(repeat):  # alternate the order: drifts in machine load cancel out
            for which in (0, 1) if k % 2 == 0 else (1, 0):
                if which == 0:
                    inversions.append(run_inversion(model, z0, steps, full, device, precision))
                else:
                    calls = [inner] * steps
                    unet_calls.append(run_unet_calls(model, z0, steps, calls, device, precision))
        seconds, peak, result, _ = median(inversions, 0)
        cpu_s = median(inversions, 3)[3]
        unet_s, unet_cpu = median(unet_calls, 0)[0], median(unet_calls, 1)[1]
        extra = {
            "steps": steps,
            "inner_used": int(result.diagnostics["inner_steps"].sum()),
            "unet_calls_s": unet_s,
            "overhead_pct": 100 * (seconds - unet_s) / unet_s,
        }
        if on_cpu:
            extra["cpu_overhead_pct"] = 100 * (cpu_s - unet_cpu) / unet_cpu
        extra["attn"] = attn
        rows.append(
            Row("null-text inversion", f"{setting} {steps}x{inner} full", seconds, "s", peak, extra)
        )
        extra = {"steps": steps, "forwards": 3 * steps, "forward_backwards": steps * inner}
        if on_cpu:
            extra["cpu_s"] = unet_cpu
        rows.append(
            Row(
                "null-text UNet calls alone",
                f"{setting} {steps}x{inner}",
                unet_s,
                "s",
                float("nan"),
                extra,
            )
        )
        # 2. With the reference early stop: the inner iterations actually used.
        seconds, peak, result, _ = run_inversion(model, z0, steps, early, device, precision)
        used = int(result.diagnostics["inner_steps"].sum())
        rows.append(
            Row(
                "null-text inversion",
                f"{setting} {steps}x{inner} early stop",
                seconds,
                "s",
                peak,
                {"steps": steps, "inner_used": used, "inner_per_step": used / steps},
            )
        )
        # 3. The Lightning stage (train.py builders) against the plain function; then edits.
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / precision
            fit_s, peak, fit_cpu, summary = run_stage(
                model, image, steps, inner, device, precision, folder
            )
            prepare(model, device)  # Lightning's teardown moves the module back to the CPU
            plain, _, _, plain_cpu = run_inversion(model, z0, steps, full, device, precision)
            extra = {
                "steps": steps,
                "function_s": plain,
                "vs_function_pct": 100 * (fit_s - plain) / plain,
            }
            if on_cpu:
                extra["cpu_vs_function_pct"] = 100 * (fit_cpu - plain_cpu) / plain_cpu
            extra["median_step_s"] = summary["seconds_per_step"]
            rows.append(
                Row(
                    "null-text stage (Lightning)",
                    f"{setting} {steps}x{inner} full",
                    fit_s,
                    "s",
                    peak,
                    extra,
                )
            )
            edit_s, peak = run_edits(model, image, folder, edits, device, precision)
            rows.append(
                Row(
                    "null-text P2P edit",
                    f"{setting} {steps} steps, 1 target",
                    edit_s,
                    "s",
                    peak,
                    {"steps": steps, "batch": 4},
                )
            )
    print_table(rows, f"Null-text inversion ({args.arch}, {device})")
    if args.json:
        save_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
