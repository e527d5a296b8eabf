"""One UNet call under each speed switch: eager, channels_last, attention without SDPA, compiled.

    python -m benchmarks.unet_switches                       # tiny model, CPU
    python -m benchmarks.unet_switches --arch sd15 --device cuda --precision bf16-mixed
    python -m benchmarks.unet_switches --arch sdxl --device cuda --precision bf16-mixed

For a sampling call (batch 2: classifier-free guidance's unconditional and conditional halves,
no gradient) and a training call (batch 1, forward and backward to the text embedding, as
Imagic's embedding step), every variant is timed in turn, `--rounds` times (alternating, so that
load on a shared machine spreads over all of them), and the median per call is reported with its
ratio to eager. Variants: `sdpa` (diffusers' default AttnProcessor2_0, PyTorch's
scaled_dot_product_attention), `explicit` (AttnProcessor: softmax(QK^T)V materialised, what
Prompt-to-Prompt's controlled layers compute), `channels_last` (UNet weights and inputs in NHWC),
`compiled` (`DiffusionModel.set_compile`, inductor; its first calls compile and are not timed).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchmarks.architectures import LATENT_ARCHS, autocast, model_for, prepare
from benchmarks.common import Row, print_table, save_rows, sync
from editing.diffusion.conditioning import Conditioning

VARIANTS = ("sdpa", "explicit", "channels_last", "compiled")
KINDS = ("sampling", "training")


def _calls(model, device: str, precision: str, channels_last: bool):
    """(sampling call, training call) closures on fixed seeded inputs."""
    g = torch.Generator().manual_seed(0)
    dim = model.unet.config.cross_attention_dim
    x2 = torch.randn(2, *model.latent_shape, generator=g).to(device)
    e2 = torch.randn(2, 77, dim, generator=g).to(device)
    x1, e1 = x2[:1].clone(), e2[:1].clone().requires_grad_(True)
    cond2, cond1 = e2, e1
    if model.conditioning_kind == "sdxl":  # the pooled embedding beside the tokens
        pooled = torch.randn(2, model.pooled_dim, generator=g).to(device)
        cond2, cond1 = Conditioning(e2, pooled), Conditioning(e1, pooled[:1])
    if channels_last:
        x2, x1 = x2.to(memory_format=torch.channels_last), x1.to(memory_format=torch.channels_last)

    def sample():
        with torch.no_grad(), autocast(device, precision):
            return model.predict(x2, 500, cond2)

    def train():
        with autocast(device, precision):
            loss = model.predict(x1, 500, cond1).pow(2).mean()
        loss.backward()
        e1.grad = None

    return sample, train


def _variant(model, name: str):
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    model.set_compile(name == "compiled")
    model.unet.set_attn_processor(AttnProcessor() if name == "explicit" else AttnProcessor2_0())
    fmt = torch.channels_last if name == "channels_last" else torch.contiguous_format
    model.unet.to(memory_format=fmt)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="tiny", choices=LATENT_ARCHS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument(
        "--kinds", nargs="+", default=list(KINDS), choices=list(KINDS), help="calls to time"
    )
    parser.add_argument("--resolution", type=int, default=None, help="pixels (default: the arch's)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10, help="timed calls per round")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    model = prepare(model_for(args.arch, args.resolution), args.device)
    calls = {}
    for name in args.variants:  # warm up (and compile) every variant before timing any
        _variant(model, name)
        both = _calls(model, args.device, args.precision, name == "channels_last")
        calls[name] = [fn for kind, fn in zip(KINDS, both) if kind in args.kinds]
        for fn in calls[name]:
            for _ in range(3):
                fn()
    kinds = [k for k in KINDS if k in args.kinds]
    times = {(n, i): [] for n in args.variants for i in range(len(kinds))}
    for _ in range(args.rounds):
        for name in args.variants:
            _variant(model, name)
            for i, fn in enumerate(calls[name]):
                sync(args.device)
                start = time.perf_counter()
                for _ in range(args.calls):
                    fn()
                sync(args.device)
                times[(name, i)].append((time.perf_counter() - start) / args.calls)
    _variant(model, "sdpa")
    rows = []
    labels = {"sampling": "sampling call, batch 2", "training": "training call, batch 1"}
    for i, kind in enumerate(labels[k] for k in kinds):
        base = statistics.median(times[(args.variants[0], i)])
        for name in args.variants:
            t = statistics.median(times[(name, i)])
            extra = {
                "vs_" + args.variants[0]: t / base,
                "low": min(times[(name, i)]),
                "high": max(times[(name, i)]),
                "rounds": args.rounds,
            }
            setting = f"{args.arch} {args.device} {args.precision} {kind}"
            rows.append(Row(f"unet {name}", setting, t, "s/call", extra=extra))
    print_table(rows, f"UNet speed switches ({args.arch}, {args.device})")
    if args.json:
        save_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
