"""Direct Inversion benchmark: edit time, its inversion, cached-inversion edits, lambda sweeps.

    python -m benchmarks.direct_inversion                             # tiny model on CPU
    python -m benchmarks.direct_inversion --arch sd15 --device cuda   # SD 1.5 at 512 px (GPU)
    python -m benchmarks.direct_inversion --arch sdxl --device cuda   # SDXL at 1024 px (GPU)
    python -m benchmarks.direct_inversion --quick                     # smoke check (seconds)

Everything runs through `DirectInversionEditor` (the code `edit.py method=direct_inversion`
runs) on one random input image, after a short warm-up edit; seconds by wall clock with CUDA
synchronised, the median of `--repeat` calls:
- one edit: `--inversion-steps` DDIM inversion steps + `--inference-steps` guided sampling steps
  (reference 100 + 100, lambda 0.5, w 3), VAE encode and decode included, no inversion cache
  (issue target on one H100 at SD 1.5 512 px: < 4 s);
- the recorded DDIM inversion alone (`editing.inversion.cache.load_or_invert`, no cache);
- an edit whose inversion comes from the content-keyed cache (`checkpoint_dir`, written by an
  untimed first call): loading + sampling + decoding;
- a sweep of `--lambdas` K noise-merge values in one editor call (one inversion, the K samples
  batched) against K single-lambda edits run one after another (each inverts again, as K
  separate commands would): sweep_vs_singles = sweep / sum of the K singles.
Peak memory: CUDA max allocated per measurement; on CPU the process's max RSS (an upper bound).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.architectures import LATENT_ARCHS, attention_kind, autocast, model_for, prepare
from benchmarks.common import Row, print_table, save_rows
from benchmarks.null_text import random_image, timed
from editing.editors.direct_inversion import STAGE, DirectInversionEditor
from editing.inversion.cache import load_or_invert
from editing.io.edit_inputs import Inputs

TARGET = "a photo of a blue circle"


def median_call(fn, device, repeat: int, warmup: int = 0) -> tuple[float, float]:
    """Median (seconds, peak MB) of `repeat` calls of `fn` after `warmup` untimed ones (with
    --compile: a batch size not seen yet compiles again, which must not be timed)."""
    for _ in range(warmup):
        fn()
    runs = sorted((timed(fn, device)[:2] for _ in range(repeat)), key=lambda r: r[0])
    return runs[len(runs) // 2]


def edit_call(model, editor, inputs, device, precision):
    def call():
        with autocast(device, precision):
            return editor(model, inputs)

    return call


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="tiny", choices=LATENT_ARCHS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--inversion-steps", type=int, default=None, help="100 (quick: 4)")
    parser.add_argument("--inference-steps", type=int, default=None, help="100 (quick: 4)")
    parser.add_argument("--lambdas", type=int, default=None, help="K of the sweep (4; quick: 2)")
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed calls (CPU 3; CUDA, quick: 1)"
    )
    parser.add_argument("--precisions", nargs="+", default=None, help="32-true / bf16-mixed")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--quick", action="store_true", help="minimal counts (smoke check)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    quick, device = args.quick, args.device
    n_inv = args.inversion_steps or (4 if quick else 100)
    n_inf = args.inference_steps or (4 if quick else 100)
    k = args.lambdas or (2 if quick else 4)
    repeat = args.repeat or (1 if quick or torch.device(args.device).type == "cuda" else 3)
    precisions = args.precisions or (
        ["32-true", "bf16-mixed"] if torch.device(device).type == "cuda" else ["32-true"]
    )

    model = prepare(model_for(args.arch, args.resolution), device, args.channels_last, args.compile)
    image = random_image(model.resolution)
    inputs = Inputs(image=image, target_prompt=TARGET)
    flags = "".join([" compile" if args.compile else "", " cl" if args.channels_last else ""])
    steps = {"num_inversion_steps": n_inv, "num_inference_steps": n_inf}
    single = DirectInversionEditor(noise_lambda=0.5, **steps)
    lambdas = [round(float(v), 3) for v in np.linspace(0.1, 0.9, k)]
    sweep = DirectInversionEditor(noise_lambda=lambdas, batch_size=k, **steps)
    singles = [DirectInversionEditor(noise_lambda=lam, **steps) for lam in lambdas]
    rows: list[Row] = []
    for precision in precisions:
        setting = f"{args.arch} {device} {precision}{flags}"
        warm = DirectInversionEditor(num_inversion_steps=2, num_inference_steps=2)
        edit_call(model, warm, inputs, device, precision)()
        # 1. One edit, fresh inversion.
        seconds, peak = median_call(
            edit_call(model, single, inputs, device, precision), device, repeat
        )
        extra = {"steps": n_inv + n_inf, "attn": attention_kind(model)}
        rows.append(
            Row("direct inversion edit", f"{setting} {n_inv}+{n_inf}", seconds, "s", peak, extra)
        )

        # 2. The recorded inversion alone.
        def invert(precision=precision):
            with autocast(device, precision):
                return load_or_invert(model, image, "", n_inv, None, STAGE)

        seconds, peak = median_call(invert, device, repeat)
        rows.append(
            Row(
                "direct inversion: inversion",
                f"{setting} {n_inv}",
                seconds,
                "s",
                peak,
                {"steps": n_inv},
            )
        )
        # 3. Edits from the cached inversion.
        with tempfile.TemporaryDirectory() as tmp:
            cached = Inputs(image=image, target_prompt=TARGET, checkpoint_dir=Path(tmp))
            call = edit_call(model, single, cached, device, precision)
            call()  # writes the cache
            seconds, peak = median_call(call, device, repeat)
        rows.append(
            Row(
                "direct inversion cached edit",
                f"{setting} {n_inf} sampling steps",
                seconds,
                "s",
                peak,
                {"steps": n_inf},
            )
        )
        # 4. A K-value lambda sweep against K single edits.
        sweep_call = edit_call(model, sweep, inputs, device, precision)
        seconds, peak = median_call(sweep_call, device, repeat, warmup=int(args.compile))
        single_total = 0.0
        for editor in singles:
            single_total += timed(edit_call(model, editor, inputs, device, precision), device)[0]
        rows.append(
            Row(
                "direct inversion sweep",
                f"{setting} K={k} lambdas {n_inv}+{n_inf}",
                seconds,
                "s",
                peak,
                {
                    "steps": n_inv + n_inf,
                    "k_singles_s": single_total,
                    "sweep_vs_singles": seconds / single_total,
                },
            )
        )
    print_table(rows, f"Direct Inversion ({args.arch}, {device})")
    if args.json:
        save_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
