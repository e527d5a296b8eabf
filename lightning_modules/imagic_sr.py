"""Imagic's super-resolution fine-tune (Kawar et al., CVPR 2023, Sec. 3 step B, cascades).

On Imagen, "the auxiliary super-resolution models are fine-tuned in parallel with the same loss but
conditioned on e_tgt" (the paper, Sec. 3; `docs/methods.md`, Sec. 3). `ImagicSRFinetuneStage` does
that for a pixel cascade's SR stage (`DiffusionModel.sr`): on the pair (x_low, x) = (the input at
the base resolution, the input at the SR resolution), each step

    1. draws t ~ U{0..T-1}, eps ~ N(0, I) and eps_aug ~ N(0, I) from a generator seeded by
       (seed, rank, step) (the SR works at its own resolution, so it draws its own noise);
    2. u_s = sqrt(a'_s) upsample(x_low) + sqrt(1 - a'_s) eps_aug at the inference noise level s;
    3. L = || eps - f_sr(concat[x_t, u_s], t, e_tgt, s) ||^2 with x_t = sqrt(a_t) x + sqrt(1 - a_t) eps
       (`editing.diffusion.objectives.denoising_loss`; for learned-variance UNets only the eps half: the
       variance half gets no gradient).

It needs no earlier artifact (e_tgt = text_encoder(target text)), so it can run beside the base
stages. Only a copy of the SR UNet trains; the base model object is never mutated. The artifact
`imagic_sr_finetune.safetensors` records the base identity and the SR stage's own (`sr_*` keys).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import torch
from torch import Tensor

from editing.diffusion.objectives import denoising_loss
from editing.errors import UserInputError, require_text
from editing.io.artifacts import image_metadata, make_metadata
from editing.io.edit_inputs import Inputs
from editing.io.images import load_image
from editing.models.cascade import require_sr, sr_metadata, super_resolve
from editing.models.diffusion_model import DiffusionModel
from editing.models.unet_weights import DEFAULT_LORA_TARGETS
from lightning_modules.base import StageModule, log_if_due
from lightning_modules.unet_finetune import (
    UnetFinetune,
    check_finetune_settings,
    resolve_finetune_defaults,
)

_SR_STREAM = 0x5352  # tags the SR stage's draws apart from the base stages' (same seed)


def sr_step_draws(
    seed: int, rank: int, step: int, batch: int, shape: tuple[int, ...], num_timesteps: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(t [B] int64 in [0, T), eps [B, *shape], eps_aug [B, *shape]) of one SR step."""
    state = np.random.SeedSequence([seed, rank, step, _SR_STREAM]).generate_state(1, np.uint64)
    g = torch.Generator().manual_seed(int(state[0] % (2**63 - 1)))
    t = torch.randint(0, num_timesteps, (batch,), generator=g, dtype=torch.int64)
    noise = torch.randn((2, batch, *shape), generator=g)
    return t, noise[0], noise[1]


class ImagicSRFinetuneStage(UnetFinetune, StageModule):
    """Fine-tune the SR stage of a cascade on the input image, conditioned on e_tgt.

    Args:
        model: the frozen cascade (`model.sr` is required); only a copy of `model.sr.unet` trains.
        inputs: image (a file: it is read again at the SR resolution) and target_prompt.
        num_steps: fine-tuning steps (paper, Imagen: 1500 for base and SR alike).
        batch_size: (t, noise) draws per step.
        lr: learning rate (None: by mode as the base fine-tune, `FINETUNE_LR`: full 5e-7, lora 1e-4).
        optimizer: adam | adamw | adafactor | adam8bit.
        finetune_mode, lora_rank, lora_alpha, lora_targets, gradient_checkpointing, save_dtype: as
            `ImagicFinetuneStage`.
        noise_level: augmentation level s of the low-res image (default: the SR model's inference
            level, so the fine-tune sees exactly the condition the edit will use).
    """

    stage = "imagic_sr_finetune"

    def __init__(
        self,
        model: DiffusionModel,
        inputs: Inputs,
        name: str = "imagic_sr_finetune",
        num_steps: int = 1500,
        batch_size: int = 1,
        lr: float | None = None,
        optimizer: str = "adam",
        finetune_mode: str = "full",
        lora_rank: int = 4,
        lora_alpha: float | None = None,
        lora_targets: list[str] | tuple[str, ...] = DEFAULT_LORA_TARGETS,
        gradient_checkpointing: bool = False,
        save_dtype: str = "float32",
        noise_level: int | None = None,
    ) -> None:
        base_sr = require_sr(model, f"stage={self.stage}")
        if inputs.image is None:
            raise UserInputError(f"stage={self.stage} needs image=PATH")
        finetune_mode, lr = resolve_finetune_defaults(model, finetune_mode, lr)
        check_finetune_settings(finetune_mode, save_dtype)
        target = require_text(inputs.target_prompt, "target_prompt")
        # 1. e_tgt from the cascade's shared text encoder; the module keeps only the SR stage (a
        #    copy of its UNet), never the base UNet or the text encoder.
        e_tgt = model.encode_prompt([target], "target_prompt")
        sr = base_sr.with_unet(copy.deepcopy(base_sr.unet))
        super().__init__(sr, inputs, num_steps, batch_size)
        self.base = SimpleNamespace(identity=model.identity, resolution=model.resolution)
        self.target_prompt = target
        self.lr, self.optimizer_name = float(lr), optimizer
        self.noise_level = sr.check_level(sr.noise_level if noise_level is None else noise_level)
        self.register_buffer("e_tgt", e_tgt)
        self.register_buffer("uncond", model.encode_prompt([""]), persistent=False)
        # 2. The pair: the input at the base resolution (as the base stages see it) and at the SR
        #    resolution, both preprocessed from the original file by `load_image`.
        high = self._high_res(inputs, model)
        self.high_sha256 = high.sha256
        self.register_buffer("x_low", inputs.image.pixels.clone(), persistent=False)
        self.register_buffer("x_high", high.pixels.clone(), persistent=False)
        # 3. What trains: all SR UNet weights, or LoRA adapters on its attention projections.
        self.setup_unet_finetune(
            sr.unet,
            finetune_mode,
            lora_rank,
            lora_alpha,
            lora_targets,
            gradient_checkpointing,
            save_dtype,
        )

    @staticmethod
    def _high_res(inputs: Inputs, model: DiffusionModel):
        """The input at the SR stage's size: the base geometry scaled by the cascade's factor
        (a square crop of the SR side for images without a geometry)."""
        image, f = inputs.image, model.sr_factor
        geometry = image.geometry.scaled(f) if image.geometry is not None else None
        side = image.size[0] * f
        try:
            return load_image(image.path, side, geometry=geometry)
        except UserInputError as err:
            raise UserInputError(
                f"stage=imagic_sr_finetune reads the input file again at {side} px: {err}"
            ) from None

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        sr = self.model
        b = int(batch["t"].shape[0])
        # 1. (t, eps, eps_aug) of this step at the SR resolution (the batch gives the step index).
        t, noise, eps_aug = sr_step_draws(
            self.inputs.seed,
            self.global_rank,
            int(batch["step"]),
            b,
            sr.sample_shape(tuple(self.x_high.shape[-2:])),
            sr.num_train_timesteps,
        )
        # 2. u_s: the upsampled low-res input noised to the inference augmentation level.
        image, level = sr.condition(
            self.x_low.expand(b, -1, -1, -1), eps_aug.to(self.device), self.noise_level
        )
        # 3. || eps - f_sr(concat[x_t, u_s], t, e_tgt, s) ||^2 on the high-res input.
        x0 = self.x_high.expand(b, -1, -1, -1)
        emb = self.e_tgt.expand(b, -1, -1)
        loss = denoising_loss(sr.bind(image, level), x0, emb, t.to(self.device), noise.to(x0))
        log_if_due(self, "loss", loss, prog_bar=True)
        return loss

    def artifact(self, full_state=None) -> tuple[dict[str, Tensor], dict[str, str]]:
        weights, weight_meta = self.unet_weights(full_state)
        hparams = {
            "lr": self.lr,
            "num_steps": self.num_steps,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer_name,
            **self.finetune_hparams(),
        }
        metadata = make_metadata(
            self.stage,
            self.base,
            hparams=hparams,
            **image_metadata(self.inputs.image),
            sr_image_sha256=self.high_sha256,
            target_prompt=self.target_prompt,
            seed=self.inputs.seed,
            steps_run=self.steps_run,
            sr_noise_level=self.noise_level,
            **sr_metadata(self.model),
        )
        metadata.update(weight_meta)
        return {"e_tgt": self.e_tgt.float(), **weights}, metadata

    @torch.no_grad()
    def preview(self, num_inference_steps: int) -> list[tuple[str, Tensor]]:
        image = super_resolve(
            self.model,
            self.x_low,
            self.e_tgt,
            self.uncond,
            [0],
            num_inference_steps,
            4.0,
            self.noise_level,
            size=tuple(self.x_high.shape[-2:]),
        )
        return [("input", self.x_high[0].cpu()), ("SR(e_tgt)", image[0])]
