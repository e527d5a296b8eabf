"""Cascade benchmark (DeepFloyd IF sizes): time and peak memory per Imagic stage and sampling step.

    python -m benchmarks.cascade                           # tiny IF cascade on CPU (validation)
    python -m benchmarks.cascade --arch if --device cuda   # IF-I-XL + IF-II-L + T5-XXL, random weights

Stages, each run through train.py's own module / datamodule / trainer builders (as `train.py`
runs them, so Lightning moves only what a stage holds to the device and back afterwards):
imagic_embed, imagic_finetune (full, LoRA) on the 64 px base, imagic_sr_finetune (full, LoRA) on
the 64 -> 256 px SR stage; then one guided DDIM step (CFG batch of 2) of each stage. Settings:
`bf16-mixed` (one device), `fsdp` (FSDP FULL_SHARD, bf16-mixed, one GPU) and `fsdp-offload` (the
same with parameters offloaded to CPU: what lets a full fine-tune fit a small GPU). The "fits"
column lists which of 24 / 40 / 80 GB hold the measured peak with 5 % to spare.

Architectures with random weights (speed and memory do not depend on the values): IF's block
layout (diffusers' IF conversion: ResnetDownsample / SimpleCrossAttn blocks, GELU, scale-shift norm,
text projection and pooling), widths chosen to match the published parameter counts: IF-I-XL 4.3 B
(704-2816 channels, 3 blocks per level), IF-II-L 1.3 B (320-1920 channels, attention at 64 and 32 px),
T5 v1.1 XXL encoder 4.8 B. `--dtype` is the frozen weights' dtype (bfloat16 by default on GPU).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import Row, peak_memory, print_table, save_rows, time_per_call
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image

STAGES = {
    "embed": ["stage=imagic_embed"],
    "finetune-full": ["stage=imagic_finetune"],
    "finetune-lora": ["stage=imagic_finetune", "stage.finetune_mode=lora", "stage.lora_rank=8"],
    "sr-full": ["stage=imagic_sr_finetune"],
    "sr-lora": ["stage=imagic_sr_finetune", "stage.finetune_mode=lora", "stage.lora_rank=8"],
}
SETTINGS = {
    "32-true": ["trainer.precision=32-true"],
    "bf16-mixed": ["trainer.precision=bf16-mixed"],
    "fsdp": ["trainer=fsdp", "trainer.devices=1"],
    "fsdp-offload": ["trainer=fsdp", "trainer.devices=1", "+trainer.strategy.cpu_offload=true"],
}


def if_cascade(device: str, dtype: torch.dtype):
    """IF-I-XL + IF-II-L + T5-XXL sizes with random weights, built on `device`, kept on CPU."""
    from transformers import T5Config, T5EncoderModel

    from demo_world.tiny_if import build_t5_tokenizer, if_schedulers, if_unet
    from editing.models.cascade import SuperResolutionModel
    from editing.models.diffusion_model import DiffusionModel

    with torch.device(device):  # random init where it is fast, then parked on the CPU
        text_encoder = T5EncoderModel(
            T5Config(
                vocab_size=32128,
                d_model=4096,
                d_kv=64,
                d_ff=10240,
                num_layers=24,
                num_heads=64,
                feed_forward_proj="gated-gelu",
                is_encoder_decoder=False,
                use_cache=False,
            )
        )
        base = if_unet(3, 64, 4096, (704, 1408, 2112, 2816), 3, 2816, 64, 32)
        sr = if_unet(6, 256, 4096, (320, 640, 1280, 1920), 2, 1280, 64, 32, True, 2)
    scheduler, noise_scheduler = if_schedulers()
    stage_2 = SuperResolutionModel(sr, scheduler, noise_scheduler, name="if-ii-l-random")
    model = DiffusionModel(
        base,
        text_encoder,
        build_t5_tokenizer(model_max_length=77),
        if_schedulers()[0],
        None,
        name="if-i-xl-random",
        resolution=64,
        text_attention_mask=True,
        sr=stage_2,
    )
    return model.to("cpu", dtype).freeze()


def build(arch: str, device: str, dtype: torch.dtype):
    if arch == "tiny":
        from demo_world.tiny_if import build_tiny_if

        return build_tiny_if().to(dtype=dtype)
    if arch == "if":
        return if_cascade(device, dtype)
    raise ValueError(f"unknown architecture {arch!r}")


def stage_run(model, setting: str, stage: str, steps: int, folder: Path, device: str):
    """Fit one stage through train.py's builders; returns the step timer's summary."""
    from editing_app import training as train_cli
    from editing_app.configs import compose_config

    image = folder / "bench.png"
    if not image.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image)
    accelerator = "gpu" if device == "cuda" else "cpu"
    cfg = compose_config(
        "train",
        [
            *STAGES[stage],
            *SETTINGS[setting],
            f"output_dir={folder}",
            f"image={image}",
            f"trainer.max_steps={steps}",
            f"trainer.accelerator={accelerator}",
            "trainer.enable_progress_bar=false",
            "callbacks=none",
            "logger=none",
            "target_prompt=a photo of a red circle",
        ],
    )
    inputs = Inputs(
        image=load_image(image, model.resolution),
        target_prompt=cfg.target_prompt,
        output_dir=folder,
        checkpoint_dir=folder,
    )
    module = train_cli.build_module(cfg.stage, model, inputs)
    datamodule = train_cli.build_datamodule(cfg.stage, module, model, inputs)
    trainer, _, timer = train_cli.build_trainer(cfg, module.stage, module.trainer_max_steps, folder)
    trainer.fit(module, datamodule=datamodule)
    model.to("cpu")  # what a stage moved to the device goes back, as between train.py's stages
    return timer.summary()


@torch.no_grad()
def sampling_rows(model, device: str, setting: str, label: str) -> list[Row]:
    """One guided DDIM step (uncond + cond batch) of the base and of the SR stage."""
    from editing.diffusion.cfg import guided_eps

    rows = []
    autocast = torch.autocast(device, torch.bfloat16, enabled=setting != "32-true")
    model.to(device)
    cond, uncond = model.encode_prompt(["a photo of a red circle"]), model.encode_prompt([""])
    low = torch.zeros(1, 3, model.resolution, model.resolution, device=device)
    noise = torch.zeros(1, *model.sr.latent_shape, device=device)
    sr = model.sr.bind(*model.sr.condition(low, noise))
    for name, stage in (("sample base step", model), ("sample sr step", sr)):
        x = torch.randn(1, *stage.latent_shape, device=device)
        with peak_memory(device) as mem, autocast:
            seconds = time_per_call(
                lambda s=stage, x=x: guided_eps(s, x, 500, cond, uncond, 7.0), device
            )
        rows.append(
            Row(name, label, seconds, "s/step", mem["mb"], {"fits": fits(mem["mb"], device)})
        )
    model.to("cpu")
    return rows


def fits(peak_mb: float, device: str) -> str:
    """The GPU sizes (GB) that hold a CUDA peak of `peak_mb` with 5 % to spare ("-" on CPU)."""
    if device != "cuda":
        return "-"
    sizes = [g for g in (24, 40, 80) if peak_mb / 1024 <= 0.95 * g]
    return "/".join(map(str, sizes)) or "none"


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="tiny", choices=["tiny", "if"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=8, help="optimisation steps per stage")
    parser.add_argument("--settings", nargs="+", default=None, choices=sorted(SETTINGS))
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    settings = args.settings or (["bf16-mixed", "fsdp", "fsdp-offload"] if cuda else ["32-true"])
    if not cuda and any(s.startswith("fsdp") for s in settings):
        parser.error("the fsdp settings need --device cuda")
    dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
    model = build(args.arch, args.device, dtype)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for setting in settings:
            folder = Path(tmp) / setting
            label = f"{args.arch} {setting} {str(dtype).replace('torch.', '')}"
            for stage in args.stages:
                if (
                    stage.startswith("finetune")
                    and not (folder / "imagic_embed.safetensors").exists()
                ):
                    stage_run(model, setting, "embed", 2, folder, args.device)
                s = stage_run(model, setting, stage, args.steps, folder, args.device)
                peak = s["peak_memory_mb"]
                extra = {"steps": s["steps"], "fits": fits(peak, args.device)}
                rows.append(
                    Row(f"imagic {stage}", label, s["seconds_per_step"], "s/step", peak, extra)
                )
                if cuda:
                    torch.cuda.empty_cache()
            rows += sampling_rows(model, args.device, setting, label)
    print_table(rows, f"Imagic on a cascade ({args.arch}, {args.device})")
    if args.json:
        save_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
