"""Why Direct Inversion's fidelity need not rise with lambda: the trajectory's drift, measured.

With the linear merge eps = (1 - lambda) eps_cfg + lambda eps_inv[i], lambda = 1 replays the
inversion exactly, but for lambda < 1 the sample x_i leaves the inversion's trajectory x_i^inv.
The recorded eps_inv[i] does not depend on x, so in the DDIM step x_{i+1} = sqrt(a_prev / a_t) x_i
+ (...) eps the lambda share of a deviation is carried on with the gain sqrt(a_prev / a_t) and
nothing pulls it back; only the model's share (1 - lambda) eps_cfg(x) reacts to it. Over a whole
run those gains multiply to sqrt(a_0 / a_T), which is set by the schedule alone.

For `--cases` colour edits of the demo suite (the quality run's settings: inversion conditioned on
the source caption, guidance 3, 100 + 100 steps) this prints per lambda the RMS deviation
|x_i - x_i^inv| at a few sampling steps and the background PSNR of the result against the input,
and the schedule's whole-run gain.

    python scripts/direct_inversion_drift.py [--cases 5] [--steps 100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo_world.demo_model import load_demo_model  # noqa: E402
from demo_world.suite import make_suite  # noqa: E402
from editing.diffusion.cfg import guided_eps  # noqa: E402
from editing.diffusion.ddim import make_schedule  # noqa: E402
from editing.diffusion.denoise import denoise  # noqa: E402
from editing.editors.direct_inversion import merge_noise  # noqa: E402
from editing.inversion.ddim_inversion import invert  # noqa: E402

LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def background_psnr(result: torch.Tensor, image: torch.Tensor, keep: np.ndarray) -> float:
    """PSNR (images in [0, 1]) over the pixels outside the edit's mask."""
    mask = torch.from_numpy(keep)
    diff = ((result - image) / 2).pow(2)[0][:, mask]
    return float(10 * torch.log10(1 / diff.mean().clamp_min(1e-12)))


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--guidance", type=float, default=3.0)
    args = parser.parse_args(argv)

    model = load_demo_model()
    schedule = make_schedule(model.scheduler, args.steps)
    gain = float((schedule.alphas_prev[-1] / schedule.alphas[0]).sqrt())
    print(f"whole-run gain of a frozen-eps deviation sqrt(a_0 / a_T): {gain:.1f}")
    marks = sorted({0, args.steps // 10, args.steps // 4, args.steps // 2, args.steps - 1})
    drift = {lam: np.zeros(len(marks)) for lam in LAMBDAS}
    psnrs = {lam: [] for lam in LAMBDAS}
    uncond = model.encode_prompt([""])
    for case in make_suite("colour", args.cases, seed=0):
        image = torch.from_numpy(case.image).permute(2, 0, 1)[None].float() / 127.5 - 1
        record = invert(
            model, model.encode_image(image), model.encode_prompt([case.source_prompt]), schedule
        )
        cond = model.encode_prompt([case.target_prompt])
        for lam in LAMBDAS:
            path: list[torch.Tensor] = []

            def eps_fn(x, t, i, lam=lam, cond=cond, eps_inv=record.eps):
                eps_cfg = guided_eps(model, x, t, cond, uncond, args.guidance)
                return merge_noise(eps_cfg, eps_inv[i], lam)

            def after_step(x, i, path=path):
                path.append(x)
                return x

            z0 = denoise(record.x_T, schedule, eps_fn, after_step=after_step)
            for j, i in enumerate(marks):
                reference = record.latents[len(record.latents) - 2 - i]
                drift[lam][j] += float((path[i] - reference).pow(2).mean().sqrt()) / args.cases
            result = model.decode(z0).clamp(-1, 1)
            psnrs[lam].append(background_psnr(result, image, ~case.mask))
    print("RMS |x_i - x_i^inv| after sampling step i (mean over cases); background PSNR")
    print("lambda  " + "  ".join(f"i={i:<5d}" for i in marks) + "  background PSNR")
    for lam in LAMBDAS:
        row = "  ".join(f"{d:7.4f}" for d in drift[lam])
        print(f"{lam:6.2f}  {row}  {np.mean(psnrs[lam]):6.2f} dB")


if __name__ == "__main__":
    main()
