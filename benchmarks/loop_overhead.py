"""What Lightning's training loop costs per step, with no model to hide it.

    python -m benchmarks.loop_overhead [--steps 2000] [--repeat 3]

A one-tensor "embedding" ([1, 77, 32], Adam) is optimised on a trivial loss, the (t, noise) of
each step drawn by the project's `NoiseStream`, in two ways that alternate `--repeat` times:
a Lightning fit with manual optimisation (the Imagic stages' step: zero grad, `manual_backward`,
`LightningOptimizer.step`) and no logger, checkpoints, progress bar or callbacks of the
project's own; and the same steps as a plain PyTorch loop. The difference of their process CPU
time per step is the floor of Lightning's per-step cost on this machine: data fetch, batch
transfer, hooks, optimiser wrappers. The project's stages add their callbacks (timing,
checkpoints, previews, progress) on top of it.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import torch
from torch import Tensor

from benchmarks.common import Row, print_table
from datamodules.single_image import NoiseStream

NOISE_SHAPE = (4, 8, 8)


def _loss(e: Tensor, noise: Tensor) -> Tensor:
    return (e.mean() - noise.mean()).pow(2)


def bare_loop(steps: int) -> tuple[float, Tensor]:
    """(CPU seconds per step, the optimised tensor) of the plain PyTorch loop."""
    e = torch.nn.Parameter(torch.zeros(1, 77, 32))
    optimizer = torch.optim.Adam([e], lr=1e-3)
    stream = NoiseStream(0, 0, 1, NOISE_SHAPE, (0, 999))
    start = time.process_time()
    for k in range(steps):
        batch = stream.batch(k)
        optimizer.zero_grad(set_to_none=True)
        loss = _loss(e, batch["noise"])
        loss.backward()
        optimizer.step()
    return (time.process_time() - start) / steps, e.detach()


def lightning_loop(steps: int) -> tuple[float, Tensor]:
    """(CPU seconds per step, the optimised tensor) of the same steps under `Trainer.fit`
    (manual optimisation)."""
    import lightning.pytorch as pl

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            stream = NoiseStream(0, 0, 1, NOISE_SHAPE, (0, 999))
            k = 0
            while True:
                yield stream.batch(k)
                k += 1

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.e = torch.nn.Parameter(torch.zeros(1, 77, 32))

        def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
            optimizer = self.optimizers()
            optimizer.zero_grad(set_to_none=True)
            loss = _loss(self.e, batch["noise"])
            self.manual_backward(loss)
            optimizer.step()
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam([self.e], lr=1e-3)

        def train_dataloader(self):
            return torch.utils.data.DataLoader(Stream(), batch_size=None, num_workers=0)

    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = Module()
    start = time.process_time()
    trainer.fit(module)
    return (time.process_time() - start) / steps, module.e.detach()


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    bare, lit, same = [], [], True
    for _ in range(args.repeat):
        lit_s, lit_e = lightning_loop(args.steps)
        bare_s, bare_e = bare_loop(args.steps)
        lit.append(lit_s)
        bare.append(bare_s)
        same = same and torch.equal(lit_e, bare_e)
    overheads = [a - b for a, b in zip(lit, bare)]
    rows = [
        Row(
            "loop overhead",
            f"cpu {args.steps} steps x {args.repeat}",
            statistics.median(lit),
            extra={
                "bare_s_per_step": statistics.median(bare),
                "overhead_ms": 1e3 * statistics.median(overheads),
                "overhead_ms_low": 1e3 * min(overheads),
                "overhead_ms_high": 1e3 * max(overheads),
                "same_result": same,  # both loops took bit-identical steps
            },
        )
    ]
    print_table(rows, "Lightning's per-step cost (manual optimisation, no callbacks)")
    return rows


if __name__ == "__main__":
    main()
