"""Imagic on the demo cascade: fine-tuned vs pretrained super-resolution.

For `--cases` generated shape edits rendered at 64 px, runs `train.py stage=imagic_cascade` on the
demo cascade (32 px base + 32->64 SR, `base_model=demo_cascade`) once per case, then
`edit.py method=imagic` with `method.sr=finetuned`, `pretrained` and `none` (bicubic) at eta = 0
(the reconstruction) and eta = 0.8 (the edit), and reports per SR mode:
    - PSNR of the eta = 0 output against the 64 px input (fidelity of the high-resolution result);
    - the oracle's verdict on the eta = 0.8 output (target shape reached, other attributes kept).

    python scripts/demo_sr_quality.py [--cases 6] [--out runs/sr_quality]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from demo_world import judge, read_image  # noqa: E402
from demo_world.suite import make_suite  # noqa: E402
from editing.metrics import psnr  # noqa: E402

MODES = ("finetuned", "pretrained", "none")
TRAIN = [
    "base_model=demo_cascade",
    "stage=imagic_cascade",
    "trainer=cpu",
    "logger=none",
    "callbacks=none",
    # the demo sizes (stage=imagic_demo) for the base; a short, gentle SR fine-tune
    "stage.embed.num_steps=150",
    "stage.embed.lr=1e-2",
    "stage.finetune.num_steps=150",
    "stage.finetune.lr=2e-5",
    "stage.sr_finetune.num_steps=150",
    "stage.sr_finetune.lr=2e-5",
]


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """`editing.metrics.psnr` of two uint8 [H, W, 3] images."""
    return float(psnr(*(torch.from_numpy(x).permute(2, 0, 1)[None] / 255.0 for x in (a, b)))[0])


def run(args: list[str]) -> None:
    subprocess.run([sys.executable, *args], cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("runs/sr_quality"))
    args = parser.parse_args(argv)
    out = args.out.resolve()
    scores = {m: {"psnr": [], "reached": [], "kept": []} for m in MODES}
    for case in make_suite("shape", args.cases, seed=0, resolution=64):
        folder = out / case.case_id
        folder.mkdir(parents=True, exist_ok=True)
        image = folder / "input.png"
        Image.fromarray(case.image).save(image)
        ckpt = folder / "checkpoints"
        if not (ckpt / "imagic_sr_finetune.safetensors").is_file():
            run(
                [
                    "train.py",
                    *TRAIN,
                    f"image={image}",
                    f"target_prompt={case.target_prompt}",
                    f"output_dir={ckpt}",
                ]
            )
        for mode in MODES:
            edit = folder / mode
            run(
                [
                    "edit.py",
                    "base_model=demo_cascade",
                    "method=imagic",
                    f"image={image}",
                    f"checkpoint_dir={ckpt}",
                    f"output_dir={edit}",
                    f"method.sr={mode}",
                    "method.eta=[0,0.8]",
                    "method.seeds=[0]",
                    "method.guidance_scale=3",
                ]
            )
            samples = sorted((edit / "samples").glob("*.png"))
            recon, edited = (np.asarray(Image.open(p).convert("RGB")) for p in samples)
            scores[mode]["psnr"].append(psnr_uint8(recon, case.image))
            verdict = judge(read_image(edited), case.target_scene)
            others = ("colour", "size", "position", "background")
            scores[mode]["reached"].append(bool(verdict["shape"]))
            scores[mode]["kept"].append(all(bool(verdict[k]) for k in others))
        print(case.case_id, {m: round(scores[m]["psnr"][-1], 2) for m in MODES}, flush=True)
    table = {
        m: {
            "cases": len(v["psnr"]),
            "eta0_psnr_db": float(np.mean(v["psnr"])),
            "shape_reached": float(np.mean(v["reached"])),
            "others_kept": float(np.mean(v["kept"])),
        }
        for m, v in scores.items()
    }
    print(
        f"{'SR':12s} {'cases':>5s} {'eta=0 PSNR (64 px)':>19s} {'shape reached':>14s} {'kept':>6s}"
    )
    for m, v in table.items():
        print(
            f"{m:12s} {v['cases']:5d} {v['eta0_psnr_db']:16.2f} dB {v['shape_reached']:14.0%} {v['others_kept']:6.0%}"
        )
    (out / "table.json").write_text(json.dumps(table, indent=2))
    return table


if __name__ == "__main__":
    main()
