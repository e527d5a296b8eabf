"""Imagic on the demo cascade: fine-tuned vs pretrained super-resolution.

For `--cases` generated shape edits rendered at 64 px, runs `train.py stage=imagic_cascade` on the
demo cascade (32 px base + 32->64 SR, `base_model=demo_cascade`) once per case, with the base
stage's embedding and fine-tune sized as `stage=imagic_demo` and the SR fine-tune as gentle as the
base's, then `edit.py method=imagic` with `method.sr=finetuned`, `pretrained` and `none` (bicubic)
at eta = 0 (the reconstruction) and eta = 0.8 (the edit), the SR stage unguided by default
(`--sr-guidance 1`: the demo SR restores the world's renders best without guidance, see
`python -m demo_world.sr_quality --guidance G`), and reports per SR mode:
    - PSNR of the eta = 0 output against the 64 px input (fidelity of the high-resolution result);
    - the oracle's verdict on the eta = 0.8 output (target shape reached, other attributes kept).

Each case's scores are written beside its runs (`<out>/<case>/scores.json`), so a rerun skips
finished cases and `--part K/N` (cases with index % N == K) splits the work over processes; the
table covers every finished case of the first `--cases`.

    python scripts/demo_sr_quality.py [--cases 10] [--out runs/sr_quality] [--part 0/2] [--sr DIR]
        [--sr-guidance 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from demo_world import judge, read_image  # noqa: E402
from demo_world.suite import make_suite  # noqa: E402
from editing.metrics import psnr  # noqa: E402

MODES = ("finetuned", "pretrained", "none")
OTHERS = ("colour", "size", "position", "background")


def train_overrides(cascade: list[str]) -> list[str]:
    """The cascade stage's overrides: the base sized as `stage=imagic_demo` (read from its config),
    the SR fine-tune with the base fine-tune's steps and lr; `cascade` selects the models."""
    demo = OmegaConf.load(REPO / "configs" / "stage" / "imagic_demo.yaml")
    embed, finetune = demo.embed, demo.finetune
    return [
        *cascade,
        "stage=imagic_cascade",
        "trainer=cpu",
        "logger=none",
        "callbacks=none",
        f"stage.embed.num_steps={embed.num_steps}",
        f"stage.embed.lr={embed.lr}",
        f"stage.finetune.num_steps={finetune.num_steps}",
        f"stage.finetune.lr={finetune.lr}",
        f"stage.sr_finetune.num_steps={finetune.num_steps}",
        f"stage.sr_finetune.lr={finetune.lr}",
    ]


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """`editing.metrics.psnr` of two uint8 [H, W, 3] images."""
    return float(psnr(*(torch.from_numpy(x).permute(2, 0, 1)[None] / 255.0 for x in (a, b)))[0])


def run(args: list[str]) -> None:
    subprocess.run([sys.executable, *args], cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def score_case(case, folder: Path, cascade: list[str], sr_guidance: float) -> dict:
    """Train once and edit with each SR mode; {mode: {"psnr", "reached", "kept"}}."""
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "input.png"
    Image.fromarray(case.image).save(image)
    ckpt = folder / "checkpoints"
    if not (ckpt / "imagic_sr_finetune.safetensors").is_file():
        run(
            [
                "train.py",
                *train_overrides(cascade),
                f"image={image}",
                f"target_prompt={case.target_prompt}",
                f"output_dir={ckpt}",
            ]
        )
    scores = {}
    for mode in MODES:
        edit = folder / mode
        run(
            [
                "edit.py",
                *cascade,
                "method=imagic",
                f"image={image}",
                f"checkpoint_dir={ckpt}",
                f"output_dir={edit}",
                f"method.sr={mode}",
                "method.eta=[0,0.8]",
                "method.seeds=[0]",
                "method.guidance_scale=3",
                f"method.sr_guidance_scale={sr_guidance}",
            ]
        )
        samples = sorted((edit / "samples").glob("*.png"))
        recon, edited = (np.asarray(Image.open(p).convert("RGB")) for p in samples)
        verdict = judge(read_image(edited), case.target_scene)
        scores[mode] = {
            "psnr": psnr_uint8(recon, case.image),
            "reached": bool(verdict["shape"]),
            "kept": all(bool(verdict[k]) for k in OTHERS),
        }
    return scores


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/sr_quality"))
    parser.add_argument("--sr", type=Path, default=None, help="SR folder (default: shipped)")
    parser.add_argument("--sr-guidance", type=float, default=1.0, help="the SR stage's CFG weight")
    parser.add_argument("--part", default="0/1", help="K/N: run the cases with index %% N == K")
    args = parser.parse_args(argv)
    k, n = (int(x) for x in args.part.split("/"))
    if not 0 <= k < n:
        parser.error(f"--part {args.part}: K/N with 0 <= K < N")
    out = args.out.resolve()
    cascade = ["base_model=demo_cascade"]
    if args.sr is not None:
        cascade.append(f"base_model.sr_path={args.sr.resolve()}")
    cases = make_suite("shape", args.cases, seed=0, resolution=64)
    for i, case in enumerate(cases):
        done = out / case.case_id / "scores.json"
        if i % n != k or done.is_file():
            continue
        scores = score_case(case, out / case.case_id, cascade, args.sr_guidance)
        done.write_text(json.dumps(scores, indent=2))
        print(case.case_id, {m: round(v["psnr"], 2) for m, v in scores.items()}, flush=True)
    finished = [
        json.loads(p.read_text()) for c in cases if (p := out / c.case_id / "scores.json").is_file()
    ]
    table = {
        m: {
            "cases": len(finished),
            "eta0_psnr_db": float(np.mean([f[m]["psnr"] for f in finished])),
            "shape_reached": float(np.mean([f[m]["reached"] for f in finished])),
            "others_kept": float(np.mean([f[m]["kept"] for f in finished])),
        }
        for m in MODES
    }
    print(
        f"{'SR':12s} {'cases':>5s} {'eta=0 PSNR (64 px)':>19s} {'shape reached':>14s} {'kept':>6s}"
    )
    for m, v in table.items():
        print(
            f"{m:12s} {v['cases']:5d} {v['eta0_psnr_db']:16.2f} dB "
            f"{v['shape_reached']:14.0%} {v['others_kept']:6.0%}"
        )
    (out / "table.json").write_text(json.dumps(table, indent=2))
    return table


if __name__ == "__main__":
    main()
