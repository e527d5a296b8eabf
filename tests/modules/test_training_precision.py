"""Half precision that trains: under half weights or mixed precision, what a stage optimises is
fp32 (`lightning_modules.base.fp32_trained`) and one step moves it as the fp32 step does.

Tolerances. Adam's first step is lr g / (|g| + eps), about lr sign(g) per component, so a step
under half precision differs from the fp32 step only where half-precision rounding of the
forward and backward passes flips the sign of (or nearly zeroes) a gradient component; the
relative L2 difference of the two steps is about 2 sqrt(fraction flipped). fp16 (11-bit
significand) keeps gradients within ~1 % and flips under 0.6 % of components on the tiny model:
relative difference <= 0.07, tolerance 0.1. bf16 (8-bit significand, 8x coarser) flips or zeroes
up to 13 % of null-text's components (relative difference 0.30 under bf16-mixed on one thread)
and 1 % of the UNet's and the embedding's (<= 0.19): tolerance 0.4. The bug these tests
hold off (half weights updated in place) leaves ~97 % of the weights unchanged: a relative
difference near 1 and a changed fraction far below the fp32 step's. Results are deterministic
(seeded draws, one thread), so the margins are not about flakiness.

CPU notes: Lightning replaces `16-mixed` by `bf16-mixed` on a CPU; the tests pass the
`MixedPrecision("16-mixed", "cpu")` plugin instead, which runs the real fp16 autocast and
GradScaler (torch supports both on CPU), so fp16 loss scaling is tested without a GPU.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.plugins import MixedPrecision
from PIL import Image

from demo_world.tiny import build_tiny_model
from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing_app.training import build_datamodule
from lightning_modules.imagic import ImagicEmbedStage, ImagicFinetuneStage
from lightning_modules.null_text import NullTextStage

PROMPT = "a red circle"
BF16_TOLERANCE = 0.4
FP16_TOLERANCE = 0.1
# (base_model.dtype, trainer.precision) pairs that train; the fp32 run is the reference.
SETTINGS = [
    ("bfloat16", "32-true"),
    ("float32", "bf16-mixed"),
    ("bfloat16", "bf16-mixed"),
    ("float32", "16-mixed"),
    ("float16", "16-mixed"),
]


def _fit(module, model, steps: int, precision: str, accelerator: str = "cpu") -> None:
    # the real fp16 AMP on CPU (see the module docstring)
    mixed16 = precision == "16-mixed" and accelerator == "cpu"
    trainer = Trainer(
        accelerator=accelerator,
        devices=1,
        max_steps=steps if module.trainer_max_steps > 0 else -1,
        max_epochs=1,
        precision=None if mixed16 else precision,
        plugins=[MixedPrecision("16-mixed", "cpu")] if mixed16 else None,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=build_datamodule({}, module, model, module.inputs))


@functools.cache
def _image(folder: str = "/tmp") -> Path:
    path = Path(folder) / "precision-test-input.png"
    y, x = np.mgrid[0:40, 0:48]
    rgb = np.stack([x * 5, y * 6, (x + y) * 3], axis=-1).astype(np.uint8)
    rgb[10:25, 12:30] = (220, 30, 30)
    Image.fromarray(rgb).save(path)
    return path


def _inputs(out: Path) -> Inputs:
    return Inputs(
        image=load_image(_image(), 32),
        target_prompt=PROMPT,
        source_prompt=PROMPT,
        output_dir=out,
        checkpoint_dir=out,
        seed=0,
    )


@functools.cache
def _reference_embedding() -> torch.Tensor:
    return build_tiny_model().encode_prompt([PROMPT])


def _stage(kind: str, model, out: Path, **kwargs):
    """The stage `kind` on `model`, built as train.py builds it (global seed first)."""
    out.mkdir(parents=True, exist_ok=True)
    if kind == "embed":
        return ImagicEmbedStage(model, _inputs(out), **kwargs)
    if kind.startswith("null"):
        mode = "global" if kind == "null-global" else "per_step"
        return NullTextStage(
            model, _inputs(out), num_inference_steps=1, early_stop=False, null_mode=mode, **kwargs
        )
    # A fine-tune conditioned on the same e_opt under every precision (the fp32 text encoder's).
    embed = ImagicEmbedStage(model, _inputs(out))
    embed.e_tgt.copy_(_reference_embedding())
    embed.e_opt.data.copy_(_reference_embedding() + 0.01)
    embed.export(out)
    torch.manual_seed(0)  # LoRA adapters are drawn from the global generator
    return ImagicFinetuneStage(model, _inputs(out), finetune_mode=kind.split("-")[1], **kwargs)


def _one_step(
    kind: str, dtype: str, precision: str, out: Path, accelerator: str = "cpu"
) -> torch.Tensor:
    """The change of every trained tensor (fp32, flattened) after one optimiser step."""
    model = build_tiny_model(dtype=dtype)
    extra = {"num_inner_steps": 1} if kind.startswith("null") else {"num_steps": 1}
    stage = _stage(kind, model, out, **extra)
    names = [n for n, p in stage.named_parameters() if p.requires_grad]
    before = {n: p.detach().float().clone() for n, p in stage.named_parameters() if n in names}
    _fit(stage, model, 1, precision, accelerator)
    params = dict(stage.named_parameters())
    assert {params[n].dtype for n in names} == {torch.float32}, "trained tensors must be fp32"
    for group in stage.trainer.optimizers[0].state.values():
        assert all(v.dtype == torch.float32 for v in group.values() if v.is_floating_point())
    return torch.cat([(params[n].detach().float().cpu() - before[n]).flatten() for n in names])


@functools.cache
def _fp32_step(kind: str) -> torch.Tensor:
    import tempfile

    return _one_step(kind, "float32", "32-true", Path(tempfile.mkdtemp()))


@pytest.mark.parametrize(("dtype", "precision"), SETTINGS)
@pytest.mark.parametrize(
    "kind", ["embed", "finetune-full", "finetune-lora", "null-per_step", "null-global"]
)
def test_one_step_moves_the_trained_tensors_as_the_fp32_step(kind, dtype, precision, tmp_path):
    reference = _fp32_step(kind)
    step = _one_step(kind, dtype, precision, tmp_path)
    half16 = "float16" in dtype or precision == "16-mixed"
    tolerance = FP16_TOLERANCE if half16 and "bf" not in dtype + precision else BF16_TOLERANCE
    relative = float((step - reference).norm() / reference.norm())
    assert relative < tolerance, f"{kind} {dtype} {precision}: relative difference {relative:.3f}"
    changed, changed_fp32 = (step != 0).float().mean(), (reference != 0).float().mean()
    assert changed >= changed_fp32 - 1e-3, f"only {float(changed):.1%} of the trained values moved"


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["finetune-full", "null-per_step"])
def test_fp16_weights_under_16_mixed_on_a_gpu_step_as_fp32(kind, tmp_path):
    reference = _fp32_step(kind)
    step = _one_step(kind, "float16", "16-mixed", tmp_path, accelerator="gpu")
    relative = float((step - reference).norm() / reference.norm())
    assert relative < FP16_TOLERANCE, f"{kind}: relative difference {relative:.3f}"


def test_sr_finetune_trains_an_fp32_copy_of_a_bf16_sr_unet(tmp_path):
    from demo_world.tiny_if import build_tiny_if
    from lightning_modules.imagic_sr import ImagicSRFinetuneStage

    model = build_tiny_if()
    model.sr.unet.to(torch.bfloat16)
    inputs = Inputs(image=load_image(_image(), 16), target_prompt=PROMPT, output_dir=tmp_path)
    stage = ImagicSRFinetuneStage(model, inputs, num_steps=2, lr=1e-3, save_dtype="bfloat16")
    _fit(stage, model, 2, "bf16-mixed")
    assert {p.dtype for p in stage.model.unet.parameters()} == {torch.float32}
    assert {p.dtype for p in model.sr.unet.parameters()} == {torch.bfloat16}, "base untouched"
    tensors, _ = stage.artifact()
    assert {v.dtype for k, v in tensors.items() if k.startswith("unet.")} == {torch.bfloat16}


@pytest.mark.parametrize("save_dtype", ["float32", "bfloat16"])
def test_saved_weights_use_save_dtype_under_half_weights(tmp_path, save_dtype):
    model = build_tiny_model(dtype="bfloat16")
    stage = _stage("finetune-full", model, tmp_path, num_steps=1, save_dtype=save_dtype)
    _fit(stage, model, 1, "32-true")
    tensors, metadata = stage.artifact()
    unet = {k[5:]: v for k, v in tensors.items() if k.startswith("unet.")}
    assert {v.dtype for v in unet.values()} == {getattr(torch, save_dtype)}
    assert metadata["save_dtype"] == save_dtype
    if save_dtype == "float32":  # the fp32 master weights themselves
        live = stage.model.unet.state_dict()
        assert all(torch.equal(unet[k], live[k]) for k in unet)


@pytest.mark.parametrize(
    ("dtype", "precision", "needle"),
    [
        ("float16", "32-true", "trainer.precision=16-mixed"),
        ("float32", "bf16-true", "base_model.dtype=bfloat16"),
    ],
)
def test_settings_that_would_lose_updates_are_refused(tmp_path, dtype, precision, needle):
    model = build_tiny_model(dtype=dtype)
    stage = _stage("embed", model, tmp_path, num_steps=1)
    with pytest.raises(UserInputError, match=needle) as err:
        _fit(stage, model, 1, precision)
    assert "\n" not in str(err.value)


def _eval_loss(stage, draws: int = 16) -> float:
    """The fine-tuned model's denoising loss on fixed (t, noise) draws, computed in fp32."""
    from datamodules.single_image import draw_noise
    from editing.diffusion.objectives import denoising_loss

    model = stage.model
    z0 = model.encode_image(stage.image_pixels).float()
    batch = draw_noise(123, 0, 0, draws, model.latent_shape, (0, model.num_train_timesteps - 1))
    with torch.no_grad():
        emb = stage.e_opt.expand(draws, -1, -1)
        z0 = z0.expand(draws, -1, -1, -1)
        return float(denoising_loss(model, z0, emb, batch["t"], batch["noise"]))


def test_imagic_finetune_under_bf16_weights_reaches_the_fp32_loss(tmp_path):
    """40 steps at lr 1e-4: an Adam step of 1e-4 is below half a bf16 ulp of any weight larger
    than 0.026 in magnitude, so bf16-stored weights would barely move (they got 54 % of the
    fp32 loss reduction). The fp32-master run must end within 2 % of that reduction from the fp32
    run's loss (measured: 0.77369 vs 0.77368 from 1.0353; the per-step rounding noise of the
    one-step test averages out over the steps)."""
    losses = {}
    for dtype in ("float32", "bfloat16"):
        model = build_tiny_model(dtype=dtype)
        stage = _stage("finetune-full", model, tmp_path / dtype, num_steps=40, lr=1e-4)
        start = _eval_loss(stage)
        _fit(stage, model, 40, "32-true")
        losses[dtype] = (start, _eval_loss(stage))
    (start32, end32), end16 = losses["float32"], losses["bfloat16"][1]
    assert end32 < 0.8 * start32, losses  # the fine-tune does something measurable
    assert abs(end16 - end32) < 0.02 * (start32 - end32), losses
