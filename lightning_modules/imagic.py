"""Imagic's two optimisation stages (Kawar et al., CVPR 2023, Sec. 3 steps A and B).

A. `ImagicEmbedStage`: e_tgt = text_encoder(target text); with the diffusion model frozen, optimise
   e (initialised at e_tgt) with the denoising loss on the input image -> e_opt.
B. `ImagicFinetuneStage`: with e_opt frozen, fine-tune the UNet (all weights, or LoRA adapters) with
   the same loss, so that e_opt reconstructs the image exactly.
Paper defaults for Stable Diffusion: A = Adam, 1000 steps, lr 2e-3; B = 1500 steps, lr 5e-7.

On SDXL the embedding is the pair (tokens [1, 77, D1 + D2], pooled [1, P]): step A optimises both
(two fp32 parameters), step B conditions on both; the size time ids follow the working size
(`editing.editors.imagic`). B's `finetune_mode=auto` picks LoRA on SDXL and the full fine-tune
elsewhere (`lightning_modules.unet_finetune.AUTO_FINETUNE_MODE`, which says why).
"""

from __future__ import annotations

import copy
import hashlib

import torch
from torch import Tensor, nn

from editing.diffusion.conditioning import embedding, expand_condition
from editing.diffusion.objectives import denoising_loss
from editing.editors.imagic import (
    Embedding,
    ImagicEditor,
    artifact_embeddings,
    embedding_tensors,
    sample_interpolations,
)
from editing.errors import UserInputError, require_text
from editing.io.artifacts import (
    check_weights,
    image_metadata,
    load_artifact,
    make_metadata,
    model_metadata,
)
from editing.io.edit_inputs import Inputs
from editing.models.diffusion_model import DiffusionModel
from editing.models.unet_weights import DEFAULT_LORA_TARGETS
from lightning_modules.base import StageModule, log_if_due, make_optimizer
from lightning_modules.single_step import SingleStepOptimization
from lightning_modules.unet_finetune import (
    UnetFinetune,
    check_finetune_settings,
    resolve_finetune_defaults,
)


class _ImagicStage(SingleStepOptimization, StageModule):
    """What both Imagic stages share: the image, e_tgt, the loss and its optimiser step (one per
    batch, `SingleStepOptimization`), previews."""

    def __init__(
        self,
        model: DiffusionModel,
        inputs: Inputs,
        num_steps: int,
        batch_size: int,
        lr: float,
        optimizer: str,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__(model, inputs, num_steps, batch_size, gradient_checkpointing)
        if inputs.image is None:
            raise UserInputError(f"stage={self.stage} needs image=PATH")
        self.target_prompt = require_text(inputs.target_prompt, "target_prompt")
        self.lr = float(lr)
        self.optimizer_name = optimizer
        self.register_buffer("image_pixels", inputs.image.pixels.clone(), persistent=False)
        self.z0: Tensor | None = None

    def on_fit_start(self) -> None:
        # The VAE encoding of the input never changes: computed once, not every step.
        self.z0 = self.model.encode_image(self.image_pixels.to(self.device))

    def condition(self) -> Embedding:
        """The [1, L, D] embedding the denoising loss is conditioned on (SDXL: with its pooled
        part, a `Conditioning`)."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        t, noise = batch["t"], batch["noise"]
        b = t.shape[0]
        z0 = self.z0.expand(b, -1, -1, -1)
        emb = expand_condition(self.condition(), b)
        loss = denoising_loss(self.model, z0, emb, t, noise)
        log_if_due(self, "loss", loss, prog_bar=True)
        return self.step_on(loss)

    def metadata(self, **extra) -> dict[str, str]:
        return make_metadata(
            self.stage,
            self.model,
            hparams={
                "lr": self.lr,
                "num_steps": self.num_steps,
                "batch_size": self.batch_size,
                "optimizer": self.optimizer_name,
                **extra,
            },
            **image_metadata(self.inputs.image),
            target_prompt=self.target_prompt,
            seed=self.inputs.seed,
            steps_run=self.steps_run,
        )


class ImagicEmbedStage(_ImagicStage):
    """Step A: optimise the text embedding e_opt with the model frozen.

    Args:
        model: the frozen base `DiffusionModel`.
        inputs: image and target_prompt are required.
        num_steps: optimisation steps (paper, SD: 1000; public ports: 500).
        batch_size: (t, noise) draws per step.
        lr: Adam learning rate (paper, SD: 2e-3; public ports: 1e-3).
        optimizer: adam | adamw | adafactor | adam8bit.
        gradient_checkpointing: recompute the frozen UNet's activations in the backward pass
            (less memory, same gradients).
    """

    stage = "imagic_embed"
    supports_fsdp = False
    supports_sdxl = True  # the pooled embedding is optimised with the tokens

    def __init__(
        self,
        model: DiffusionModel,
        inputs: Inputs,
        name: str = "imagic_embed",
        num_steps: int = 1000,
        batch_size: int = 1,
        lr: float = 2e-3,
        optimizer: str = "adam",
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__(
            model, inputs, num_steps, batch_size, lr, optimizer, gradient_checkpointing
        )
        cond = model.encode_condition([self.target_prompt], "target_prompt")
        self.register_buffer("e_tgt", cond.tokens)
        self.register_buffer("e_tgt_pooled", cond.pooled)  # SDXL's [1, P]; None elsewhere
        # The optimised embedding stays fp32 under any mixed precision; on SDXL the pooled part
        # is optimised with the tokens.
        self.e_opt = nn.Parameter(cond.tokens.clone())
        pooled = None if cond.pooled is None else nn.Parameter(cond.pooled.clone())
        self.register_parameter("e_opt_pooled", pooled)

    def target(self) -> Embedding:
        return embedding(self.e_tgt, self.e_tgt_pooled)

    def condition(self) -> Embedding:
        return embedding(self.e_opt, self.e_opt_pooled)

    def configure_optimizers(self):
        params = [p for p in (self.e_opt, self.e_opt_pooled) if p is not None]
        return make_optimizer(self.optimizer_name, params, self.lr)

    def artifact(self, full_state=None) -> tuple[dict[str, Tensor], dict[str, str]]:
        tensors = {
            **embedding_tensors("e_tgt", self.target()),
            **embedding_tensors("e_opt", self.condition()),
        }
        return tensors, self.metadata()

    @torch.no_grad()
    def preview(self, num_inference_steps: int) -> list[tuple[str, Tensor]]:
        samples = sample_interpolations(
            self.model,
            self.target(),
            self.condition().detach(),
            [0.0, 1.0],
            [0],
            num_inference_steps,
            ImagicEditor.guidance_scale,
            size=self.inputs.image.size,
        )
        return [(f"eta={eta:g}", img) for eta, _, img in samples]


class ImagicFinetuneStage(UnetFinetune, _ImagicStage):
    """Step B: fine-tune the UNet with e_opt frozen (full weights or LoRA).

    Reads `<checkpoint_dir>/imagic_embed.safetensors` (or `embed_artifact`) and refuses one made
    for another image, target text or base model.

    Args:
        num_steps: fine-tuning steps (paper, SD: 1500; public ports: 1000).
        lr: learning rate; None: by mode (`FINETUNE_LR`: full 5e-7 as the paper on SD, public
            ports 1e-6 .. 2e-6; LoRA 1e-4).
        finetune_mode: "full" (paper-faithful), "lora", or "auto" (LoRA on SDXL, else full:
            `AUTO_FINETUNE_MODE`).
        lora_rank, lora_alpha, lora_targets: LoRA shape (alpha defaults to the rank).
        gradient_checkpointing: trade compute for activation memory.
        save_dtype: dtype of full weights in the artifact (float32 | float16 | bfloat16).
        embed_artifact: explicit path of the embedding artifact.
    """

    stage = "imagic_finetune"
    supports_sdxl = True

    def __init__(
        self,
        model: DiffusionModel,
        inputs: Inputs,
        name: str = "imagic_finetune",
        num_steps: int = 1500,
        batch_size: int = 1,
        lr: float | None = None,
        optimizer: str = "adam",
        finetune_mode: str = "auto",
        lora_rank: int = 4,
        lora_alpha: float | None = None,
        lora_targets: list[str] | tuple[str, ...] = DEFAULT_LORA_TARGETS,
        gradient_checkpointing: bool = False,
        save_dtype: str = "float32",
        embed_artifact: str | None = None,
    ) -> None:
        # Fine-tune a copy of the UNet: the base model object stays untouched for later use
        # (an evaluation loop reuses it for the next image). Only the copy goes to the device.
        model = model.with_unet(copy.deepcopy(model.unet))
        finetune_mode, lr = resolve_finetune_defaults(model, finetune_mode, lr)
        super().__init__(model, inputs, num_steps, batch_size, lr, optimizer)
        check_finetune_settings(finetune_mode, save_dtype)
        folder = inputs.checkpoint_dir or inputs.output_dir
        path = embed_artifact or (folder / "imagic_embed.safetensors")
        embed = load_artifact(
            path,
            "imagic_embed",
            expect={
                **model_metadata(model),
                **image_metadata(inputs.image),
                "target_prompt": self.target_prompt,
            },
            hint=f"run `python train.py stage=imagic_embed output_dir={folder} ...` first (or stage=imagic for both stages)",
        )
        check_weights(embed, model)
        e_tgt, e_opt = artifact_embeddings(embed, model)
        self.register_buffer("e_tgt", getattr(e_tgt, "tokens", e_tgt))
        self.register_buffer("e_tgt_pooled", getattr(e_tgt, "pooled", None))
        self.register_buffer("e_opt", getattr(e_opt, "tokens", e_opt))
        self.register_buffer("e_opt_pooled", getattr(e_opt, "pooled", None))
        self.setup_unet_finetune(
            model.unet,
            finetune_mode,
            lora_rank,
            lora_alpha,
            lora_targets,
            gradient_checkpointing,
            save_dtype,
        )

    def target(self) -> Embedding:
        return embedding(self.e_tgt, self.e_tgt_pooled)

    def condition(self) -> Embedding:
        return embedding(self.e_opt, self.e_opt_pooled)

    def content_key(self) -> dict[str, str]:
        # The embedding this fine-tune is conditioned on is part of what a checkpoint is made from.
        digest = hashlib.sha256()
        for part in (self.e_opt, self.e_opt_pooled):
            if part is not None:
                digest.update(part.detach().cpu().float().numpy().tobytes())
        return {**super().content_key(), "e_opt_sha256": digest.hexdigest()[:16]}

    def artifact(self, full_state=None) -> tuple[dict[str, Tensor], dict[str, str]]:
        weights, weight_meta = self.unet_weights(full_state)
        tensors = {
            **embedding_tensors("e_tgt", self.target()),
            **embedding_tensors("e_opt", self.condition()),
            **weights,
        }
        metadata = self.metadata(**self.finetune_hparams())
        metadata.update(weight_meta)
        return tensors, metadata

    @torch.no_grad()
    def preview(self, num_inference_steps: int) -> list[tuple[str, Tensor]]:
        samples = sample_interpolations(
            self.model,
            self.target(),
            self.condition(),
            [0.0, ImagicEditor.eta, 1.0],
            [0],
            num_inference_steps,
            ImagicEditor.guidance_scale,
            size=self.inputs.image.size,
        )
        return [(f"eta={eta:g}", img) for eta, _, img in samples]
