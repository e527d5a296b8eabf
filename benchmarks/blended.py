"""Blended Diffusion benchmark: Blended Latent Diffusion and pixel Blended Diffusion, candidates.

    python -m benchmarks.blended                                # tiny models on CPU
    python -m benchmarks.blended --arch sd15 --device cuda      # SD 1.5 512 px + ADM 256 px (GPU)
    python -m benchmarks.blended --arch sdxl --device cuda      # SDXL 1024 px, latent only (GPU)
    python -m benchmarks.blended --quick                        # smoke check (seconds)

Everything runs through the editors `edit.py` runs (`BlendedLatentEditor`, `BlendedEditor`) on
one random image with a centred square mask, after one short warm-up edit per model; seconds by
wall clock with CUDA synchronised (median of `--repeat` calls for the batched runs):
- Blended Latent Diffusion (`--arch`: tiny, SD 1.5 at 512 px, SDXL at 1024 px, ...):
  `--latent-steps` DDIM steps (50), `--candidates` K samples in one batch (4), strength 1 (every
  step runs; issue target on one H100 at SD 1.5 512 px: < 3 s) and the public script's strength
  0.75; then with CLIP ranking, the K-candidate run against K single-candidate runs (seeds
  0..K-1), each timed.
- pixel Blended Diffusion (`--pixel-arch`: tiny_pixel, or the 552.8M-parameter ADM-style UNet at
  256 px; CLIP: tiny, or a random ViT-B/16): Algorithm 2 with `--pixel-steps` respaced steps minus
  `--skip` (100 - 25 = 75 guided steps), `--augmentations` N copies (16), K candidates batched and
  ranked against K single-candidate runs; s/candidate = batched run / K, and the median single
  run (issue target on one H100: < 10 s per candidate). It runs by default beside the latent
  models it is paired with (`PIXEL_ARCH`: tiny, SD 1.x/2.x), or with `--pixel-arch`; beside SDXL
  only the latent part runs unless `--parts` says otherwise.
Peak memory: CUDA max allocated per measurement; on CPU the process's max RSS (an upper bound).
"""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

import torch

from benchmarks.architectures import (
    LATENT_ARCHS,
    attention_kind,
    autocast,
    clip_for,
    model_for,
    parameter_count,
    prepare,
)
from benchmarks.common import Row, print_table, save_rows
from benchmarks.direct_inversion import median_call
from benchmarks.null_text import random_image, timed
from editing.editors.blended import BlendedEditor
from editing.editors.blended_latent import BlendedLatentEditor
from editing.io.edit_inputs import Inputs

PROMPT = "a blue ball"
PIXEL_ARCH = {"tiny": "tiny_pixel", "tiny_v": "tiny_pixel", "sd15": "adm256", "sd21": "adm256"}
"""The pixel model measured beside each latent one by default (the SD-sized ADM at 256 px)."""
CLIP_ARCH = {
    "tiny_pixel": "tiny",
    "tiny": "tiny",
    "tiny_v": "tiny",
    "tiny_sdxl": "tiny",
    "demo": "tiny",
}  # default: vit-b-16


def centre_mask(resolution: int) -> torch.Tensor:
    """[1, 1, R, R]: the centred square of half the side."""
    mask = torch.zeros(1, 1, resolution, resolution)
    lo, hi = resolution // 4, resolution - resolution // 4
    mask[..., lo:hi, lo:hi] = 1.0
    return mask


def use_clip(editor, clip) -> None:
    """Give an editor its guidance/ranking CLIP (what `load_guidance_clip` would load once)."""
    editor._clip = clip


def call(model, editor, inputs, device, precision):
    def run():
        with autocast(device, precision):
            return editor(model, inputs)

    return run


def candidates_vs_singles(
    model, make_editor, inputs, k: int, device, precision, repeat: int, warmup: int = 0
):
    """(batched run (s, MB), [single-candidate runs (s, MB)]) with `make_editor(num_candidates)`;
    `warmup` untimed batched runs first (--compile: a new batch size compiles again)."""
    run = call(model, make_editor(k), inputs, device, precision)
    batched = median_call(run, device, repeat, warmup)
    one = make_editor(1)
    singles = []
    for seed in range(k):
        single = Inputs(image=inputs.image, mask=inputs.mask, target_prompt=PROMPT, seed=seed)
        singles.append(timed(call(model, one, single, device, precision), device)[:2])
    return batched, singles


def latent_rows(args, precisions: list[str], flags: str) -> list[Row]:
    """Blended Latent Diffusion rows (one model, every precision; the CLIP is built only for the
    ranked runs, after the others, so their peak memory is the editor's own)."""
    device, k, n = args.device, args.candidates, args.latent_steps
    model = prepare(model_for(args.arch), device, args.channels_last, args.compile)
    image = random_image(model.resolution)
    inputs = Inputs(image=image, mask=centre_mask(model.resolution), target_prompt=PROMPT)
    rows = []
    for precision in precisions:
        setting = f"{args.arch} {device} {precision}{flags}"
        warm = BlendedLatentEditor(num_inference_steps=2, num_candidates=1, batch_size=1)
        call(model, warm, inputs, device, precision)()
        for strength in (1.0, 0.75):
            editor = BlendedLatentEditor(
                num_inference_steps=n, strength=strength, num_candidates=k, batch_size=k
            )
            steps_run = n - editor.start_step()
            run = call(model, editor, inputs, device, precision)
            seconds, peak = median_call(run, device, args.repeat, int(args.compile))
            extra = {"steps": steps_run, "per_candidate_s": seconds / k}
            extra["attn"] = attention_kind(model)
            setting_s = f"{setting} {n} steps s={strength:g} batch {k}"
            rows.append(Row("blended latent", setting_s, seconds, "s", peak, extra))

    clip = clip_for(args.clip or CLIP_ARCH.get(args.arch, "vit-b-16"), device)

    def ranked(num: int) -> BlendedLatentEditor:
        editor = BlendedLatentEditor(
            num_inference_steps=n,
            strength=1.0,
            num_candidates=num,
            batch_size=num,
            rank_with_clip=True,
        )
        use_clip(editor, clip)
        return editor

    for precision in precisions:
        setting = f"{args.arch} {device} {precision}{flags}"
        (seconds, peak), singles = candidates_vs_singles(
            model, ranked, inputs, k, device, precision, args.repeat, int(args.compile)
        )
        total = sum(s for s, _ in singles)
        extra = {"steps": n, "k_singles_s": total, "ranked_vs_singles": seconds / total}
        setting_s = f"{setting} {n} steps K={k} vs {k} singles"
        rows.append(Row("blended latent ranked", setting_s, seconds, "s", peak, extra))
    return rows


def pixel_rows(args, precisions: list[str], flags: str) -> list[Row]:
    """Pixel Blended Diffusion rows (one model, every precision)."""
    device, k = args.device, args.candidates
    arch = args.pixel_arch or PIXEL_ARCH[args.arch]
    model = prepare(model_for(arch), device, args.channels_last, args.compile)
    clip_arch = args.clip or CLIP_ARCH.get(arch, "vit-b-16")
    clip = clip_for(clip_arch, device)
    image = random_image(model.resolution)
    inputs = Inputs(image=image, mask=centre_mask(model.resolution), target_prompt=PROMPT)
    guided = args.pixel_steps - args.skip

    def editor(num: int, steps: int = args.pixel_steps, skip: int = args.skip) -> BlendedEditor:
        made = BlendedEditor(
            num_timesteps=steps,
            skip_timesteps=skip,
            num_augmentations=args.augmentations,
            num_candidates=num,
            batch_size=num,
        )
        use_clip(made, clip)
        return made

    notes = {
        "steps": guided,
        "unet_params_M": parameter_count(model.unet) / 1e6,
        "clip": clip_arch,
        "clip_params_M": parameter_count(clip) / 1e6,
        "attn": attention_kind(model),
    }
    rows = []
    for precision in precisions:
        setting = f"{arch} {device} {precision}{flags} {guided} steps N={args.augmentations}"
        call(model, editor(1, 3, 1), inputs, device, precision)()  # warm-up
        (seconds, peak), singles = candidates_vs_singles(
            model, editor, inputs, k, device, precision, args.repeat, int(args.compile)
        )
        rows.append(
            Row(
                "blended pixel ranked",
                f"{setting} K={k} batch {k}",
                seconds,
                "s",
                peak,
                {**notes, "per_candidate_s": seconds / k},
            )
        )
        one_s, one_mb = sorted(singles)[len(singles) // 2]
        total = sum(s for s, _ in singles)
        rows.append(
            Row(
                "blended pixel 1 candidate",
                f"{setting} (median of {k})",
                one_s,
                "s",
                one_mb,
                {"steps": guided},
            )
        )
        rows.append(
            Row(
                "blended pixel K singles",
                f"{setting} {k} runs of 1",
                total,
                "s",
                max(mb for _, mb in singles),
                {"steps": guided * k, "ranked_vs_singles": seconds / total},
            )
        )
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="tiny", choices=LATENT_ARCHS, help="latent model")
    parser.add_argument("--pixel-arch", default=None, choices=["tiny_pixel", "demo", "adm256"])
    parser.add_argument("--clip", default=None, choices=["tiny", "vit-b-16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=None,
        choices=["latent", "pixel"],
        help="default: both where the latent model has a paired pixel model (PIXEL_ARCH)",
    )
    parser.add_argument("--latent-steps", type=int, default=None, help="DDIM steps (50; quick: 4)")
    parser.add_argument(
        "--pixel-steps", type=int, default=None, help="respaced steps (100; quick: 6)"
    )
    parser.add_argument("--skip", type=int, default=None, help="skipped steps (25; quick: 2)")
    parser.add_argument("--augmentations", type=int, default=None, help="N (16; quick: 4)")
    parser.add_argument("--candidates", type=int, default=None, help="K (4; quick: 2)")
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed batched runs (CPU 3; CUDA, quick: 1)"
    )
    parser.add_argument("--precisions", nargs="+", default=None, help="32-true / bf16-mixed")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--quick", action="store_true", help="minimal counts (smoke check)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.parts is None:
        paired = args.pixel_arch is not None or args.arch in PIXEL_ARCH
        args.parts = ["latent", "pixel"] if paired else ["latent"]
    quick = args.quick
    args.latent_steps = args.latent_steps or (4 if quick else 50)
    args.pixel_steps = args.pixel_steps or (6 if quick else 100)
    args.skip = args.skip if args.skip is not None else (2 if quick else 25)
    args.augmentations = args.augmentations or (4 if quick else 16)
    args.candidates = args.candidates or (2 if quick else 4)
    args.repeat = args.repeat or (1 if quick or torch.device(args.device).type == "cuda" else 3)
    precisions = args.precisions or (
        ["32-true", "bf16-mixed"] if torch.device(args.device).type == "cuda" else ["32-true"]
    )
    flags = "".join([" compile" if args.compile else "", " cl" if args.channels_last else ""])
    rows: list[Row] = []
    for part, make_rows in (("latent", latent_rows), ("pixel", pixel_rows)):
        if part in args.parts:  # one model resident at a time: peak memory is the part's own
            rows += make_rows(args, precisions, flags)
            gc.collect()
            if torch.device(args.device).type == "cuda":
                torch.cuda.empty_cache()
    print_table(rows, f"Blended Diffusion ({args.arch}, {args.device})")
    if args.json:
        save_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
