"""The thin Lightning shells of the training stages.

`Stage` is the interface every stage implements, so that `editing_app.training` and the callbacks
treat all stages alike: `stage` (its name), `num_steps`, `batch_size`, `trainer_max_steps`,
`artifact_path(output_dir)`, `export(output_dir, full_state=None) -> Path` (called by
`callbacks.export.ArtifactExport` at the end of training), `preview(num_inference_steps)` and the
FSDP refusal of the stages that cannot be sharded.

`StageModule` is the base of the per-image optimisation stages. Such a module owns a frozen
`DiffusionModel` plus the few tensors it optimises. It keeps Lightning checkpoints small (only
what is trained, never the frozen base weights) and turns its result into a safetensors artifact
(`artifact()`).

Precision (`fp32_trained`, applied by `Stage.setup`): whatever the base model's storage dtype
(`base_model.dtype`) or the Trainer's precision, what a stage optimises is fp32 and so is its
optimiser state; frozen weights keep their dtype.

`PretrainStage` is the base of the stages that train a model from scratch on the shapes world:
AdamW with warm-up and cosine decay, and an exponential moving average of the weights
(`editing.models.ema`) for the stages that export one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from editing.io.artifacts import image_metadata, model_metadata, save_artifact, with_input_image
from editing.io.edit_inputs import Inputs
from editing.models.diffusion_model import DiffusionModel
from editing.models.ema import ema_decay_at, ema_update

_OPTIMIZERS = ("adam", "adamw", "adafactor", "adam8bit")
_HALF_TRUE = ("16-true", "bf16-true")


def fp32_trained(module: nn.Module) -> list[nn.Parameter]:
    """Cast every parameter of `module` that requires grad to fp32, in place; return them.

    The one precision rule of the training stages. A half-precision weight cannot take a small
    update: at Imagic's fine-tune lr 5e-7 an Adam step moves a weight by about 5e-7, which is
    below half an ulp (2**-11 relative in fp16, 2**-8 in bf16) of every fp16 weight larger than
    about 1e-3 in magnitude (bf16: 1.3e-4), so a half-precision UNet keeps about 97 % of its
    values per step and the fine-tune silently does almost nothing. So the trained tensors themselves are the fp32 master
    copies: Imagic's e_opt and null-text's embeddings (created fp32), a full fine-tune's whole
    UNet (cast up from `base_model.dtype`), LoRA adapters and the SR UNet. The optimiser is built
    over these tensors, so its state (Adam's moments) is fp32 too.

    Why not fp32 masters beside a half model that is re-cast after every step (apex O2)? For a
    full fine-tune it holds the same bytes (half weights + fp32 masters + half grads = fp32
    weights + fp32 grads), needs a copy-back step and loss scaling of half gradients, and a
    checkpoint would have to hold the masters apart from the module. Training the UNet in fp32
    keeps one set of weights, and half *compute* comes from `trainer.precision=bf16-mixed` or
    `16-mixed` (autocast; 16-mixed adds loss scaling), as for an fp32 base. Frozen parts (text
    encoder, VAE, a LoRA fine-tune's base weights) stay in `base_model.dtype`: that is where half
    weights save memory. peft's LoRA layers cast their input to the adapters' dtype and the result
    back, so fp32 adapters work inside a half UNet.

    Idempotent; `Stage.setup` applies it to the whole stage before a checkpoint is restored (the
    restored fp32 values are then never rounded) and before the optimiser is built. Saved weights
    are cast to `stage.save_dtype` when the artifact is written.
    """
    trained = [p for p in module.parameters() if p.requires_grad]
    for p in trained:
        if p.dtype != torch.float32:
            p.data = p.data.float()
    return trained


def check_training_precision(module: nn.Module, trainer) -> None:
    """Refuse the precision settings under which training would silently lose its updates.

    `trainer.precision=16-true|bf16-true` converts the whole module, trained tensors included, to
    half precision (see `fp32_trained`). fp16 weights (`base_model.dtype=float16`) without loss
    scaling let small gradients underflow to zero in the half backward pass (on the tiny model,
    half of null-text's embedding gradient is exactly 0): they train only under
    `trainer.precision=16-mixed`, whose GradScaler scales the loss (`manual_backward` does the
    same for null-text's manual optimisation). bf16 has fp32's exponent range and needs none.
    """
    from editing.errors import UserInputError

    precision = str(trainer.precision)
    if precision in _HALF_TRUE:
        dtype = "bfloat16" if precision.startswith("bf16") else "float16"
        raise UserInputError(
            f"trainer.precision={precision} would train half-precision weights, which lose small "
            f"updates: use base_model.dtype={dtype} (half frozen weights, fp32 trained ones) with "
            f"trainer.precision={precision.replace('true', 'mixed')}"
        )
    scaled = getattr(trainer.precision_plugin, "scaler", None) is not None
    if not scaled and any(p.dtype == torch.float16 for p in module.parameters()):
        raise UserInputError(
            f"base_model.dtype=float16 needs loss scaling or small gradients underflow to zero: "
            f"train with trainer.precision=16-mixed (a GPU; trainer.precision={precision} has none) "
            f"or base_model.dtype=bfloat16"
        )


def can_fuse(params: list[Tensor]) -> bool:
    """Whether PyTorch's fused Adam kernels take `params`: float tensors on the CPU or CUDA."""
    return bool(params) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    )


def make_optimizer(
    name: str, params, lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Adam (the papers' choice), AdamW, Adafactor (memory saver) or 8-bit Adam (bitsandbytes).

    Adam and AdamW run PyTorch's fused kernel (`fused=True`: one kernel over every tensor, the
    same update rule) when they train several tensors, all float tensors on the CPU or a GPU. For a full
    fine-tune the optimiser step is a large part of a step: on the tiny model's 208 UNet tensors
    (0.8M values) on one loaded CPU thread the per-tensor loop took 22.7 ms, the fused step 6.1 ms.
    """
    from editing.errors import UserInputError

    params = list(params)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        # One tensor (an embedding) has nothing to fuse: the per-tensor step, measured no slower.
        fused = len(params) > 1 and can_fuse(params)
        return cls(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            params, lr=lr, scale_parameter=False, relative_step=False, warmup_init=False
        )
    if name == "adam8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise UserInputError(
                "stage.optimizer=adam8bit needs bitsandbytes (pip install bitsandbytes, CUDA only)"
            ) from None
        return bnb.optim.Adam8bit(params, lr=lr, weight_decay=weight_decay)
    raise UserInputError(f"stage.optimizer={name!r} is not one of {', '.join(_OPTIMIZERS)}")


def log_if_due(module: LightningModule, name: str, value, prog_bar: bool = False) -> None:
    """`module.log(name, value)` only on the steps the loggers record (every
    `trainer.log_every_n_steps`, and the last one).

    A `self.log` call costs about a millisecond on CPU (result bookkeeping), which is a large part
    of a tiny model's optimisation step; values logged on other steps would be discarded anyway.
    The progress bar shows the latest recorded value.
    """
    trainer = module._trainer
    connector = getattr(trainer, "_logger_connector", None)
    if connector is None or connector.should_update_logs:
        module.log(name, value, prog_bar=prog_bar)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, floor: float = 0.1
) -> dict:
    """Linear warm-up to the base lr, then cosine decay to `floor` x lr (a Lightning scheduler dict)."""
    import math

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": scheduler, "interval": "step"}


class Stage(LightningModule):
    """The interface of every training stage (see the module docstring).

    Subclasses set `stage`, `num_steps` and `batch_size` and implement `training_step`,
    `configure_optimizers`, `artifact_path` and `export`.
    """

    stage: ClassVar[str] = ""
    # Stages that would export sharded parameters, or gain nothing from sharding, refuse FSDP,
    # saying why in `fsdp_refusal`.
    supports_fsdp: ClassVar[bool] = True
    fsdp_refusal: ClassVar[str] = "optimises a few small tensors"
    num_steps: int
    batch_size: int

    def setup(self, stage: str) -> None:
        from lightning.pytorch.strategies import FSDPStrategy

        from editing.errors import UserInputError

        if not self.supports_fsdp and isinstance(self.trainer.strategy, FSDPStrategy):
            raise UserInputError(
                f"stage={self.stage} {self.fsdp_refusal}: FSDP does not apply; "
                f"use trainer=default, gpu or ddp"
            )
        check_training_precision(self, self.trainer)
        fp32_trained(self)

    @property
    def trainer_max_steps(self) -> int:
        """The Trainer's max_steps for this stage (-1: the data stream bounds the run)."""
        return self.num_steps

    def artifact_path(self, output_dir: str | Path) -> Path:
        """Where `export(output_dir)` writes (a file or a folder)."""
        raise NotImplementedError

    def export(self, output_dir: str | Path, full_state: dict[str, Tensor] | None = None) -> Path:
        """Write the stage's result to `artifact_path(output_dir)` and return that path.
        `full_state` is the gathered state dict of a sharded (FSDP) run, where parameters read
        from the module would be shards (None otherwise)."""
        raise NotImplementedError

    def preview(self, num_inference_steps: int) -> list[tuple[str, Tensor]]:
        """(label, image [3, H, W] in [-1, 1]) pairs showing the current state; default none."""
        return []


class StageModule(Stage):
    """Base class of the per-image stages.

    Subclasses set `stage`, register what they optimise as parameters, and implement
    `training_step`, `configure_optimizers` and `artifact()`.
    """

    def __init__(
        self,
        model: DiffusionModel,
        inputs: Inputs,
        num_steps: int,
        batch_size: int,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.inputs = inputs
        self.num_steps = int(num_steps)
        self.batch_size = int(batch_size)
        self.gradient_checkpointing = bool(gradient_checkpointing)
        # Checkpoints hold only the trained tensors; the frozen base is reloaded on resume.
        self.strict_loading = False

    # ------------------------------------------------------------------ memory
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.gradient_checkpointing:
            self.model.unet.enable_gradient_checkpointing()

    def teardown(self, stage: str) -> None:
        """`stage.gradient_checkpointing` recomputes each UNet block's activations in the backward
        pass instead of keeping them (same gradients, about 30 % more compute). It is set on the
        stage's UNet for the fit only: embedding and null-text stages share the base model's
        UNet, which later users get back as it was."""
        if self.gradient_checkpointing:
            self.model.unet.disable_gradient_checkpointing()
        super().teardown(stage)

    # ------------------------------------------------------------------ checkpoints and artifacts
    def _kept_keys(self) -> set[str]:
        trained = {name for name, p in self.named_parameters() if p.requires_grad}
        own_buffers = {name for name, _ in self.named_buffers() if not name.startswith("model.")}
        return trained | own_buffers

    def content_key(self) -> dict[str, str]:
        """What this stage's state is made from. A checkpoint records it; resuming with other
        content (another image, prompt, base model, seed) is refused instead of silently mixing
        old optimisation state into a new artifact. Stages add their own structural settings."""
        image = self.inputs.image
        return {
            "stage": self.stage,
            **model_metadata(self.model),
            **(image_metadata(image) if image is not None else {"image_sha256": ""}),
            "source_prompt": self.inputs.source_prompt,
            "target_prompt": self.inputs.target_prompt,
            "seed": str(self.inputs.seed),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = self._kept_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["content_key"] = self.content_key()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from editing.errors import UserInputError

        saved, current = checkpoint.get("content_key"), self.content_key()
        if saved is None:
            raise UserInputError(
                f"the checkpoint has no content key: it is not a {self.stage} checkpoint of this version"
            )
        differences = [
            f"{k}: checkpoint has {saved.get(k)!r}, this run has {v!r}"
            for k, v in current.items()
            if saved.get(k) != v
        ]
        if differences:
            raise UserInputError(
                f"resume=true found a {self.stage} checkpoint made from other inputs "
                f"({'; '.join(differences)}): use another output_dir or drop resume=true"
            )

    @property
    def steps_run(self) -> int:
        """Optimisation steps actually taken (0 before fitting)."""
        trainer = getattr(self, "_trainer", None)
        return int(trainer.global_step) if trainer is not None else 0

    def artifact(
        self, full_state: dict[str, Tensor] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, str]]:
        """(tensors, metadata) of this stage's result. `full_state` is the gathered state dict of
        a sharded (FSDP) run, where parameters read from the module would be shards."""
        raise NotImplementedError

    def artifact_path(self, output_dir: str | Path) -> Path:
        return Path(output_dir) / f"{self.stage}.safetensors"

    def artifact_with_input(
        self, full_state: dict[str, Tensor] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, str]]:
        """`artifact()` plus the stage's input image (uint8, `INPUT_IMAGE_KEY`), which edit.py
        shows in its grid when an edit from this artifact is given no image=."""
        tensors, metadata = self.artifact(full_state)
        image = getattr(getattr(self, "inputs", None), "image", None)
        return with_input_image(tensors, None if image is None else image.pixels), metadata

    def export(self, output_dir: str | Path, full_state: dict[str, Tensor] | None = None) -> Path:
        tensors, metadata = self.artifact_with_input(full_state)
        return save_artifact(self.artifact_path(output_dir), tensors, metadata)


class PretrainStage(Stage):
    """Base class of the pretraining stages (a model trained from scratch on the shapes world).

    Subclasses set `lr`, `warmup_steps` and `weight_decay` (and `ema_decay` when they keep an
    EMA); `adamw_warmup_cosine(params)` is their optimiser. A stage with an EMA lists its
    (averaged, live) module pairs in `ema_pairs()`; they are updated after every step.
    Pretraining exports whole unsharded models: it refuses FSDP.
    """

    supports_fsdp = False
    fsdp_refusal = "exports whole unsharded models"
    lr: float
    warmup_steps: int
    weight_decay: float
    ema_decay: float

    def adamw_warmup_cosine(self, params) -> dict:
        """AdamW over `params`, linear warm-up to `lr`, then cosine decay to 10 % at `num_steps`."""
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        return {
            "optimizer": opt,
            "lr_scheduler": warmup_cosine(opt, self.warmup_steps, self.num_steps),
        }

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(EMA module, live module) pairs; default none (no EMA)."""
        return []

    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        pairs = self.ema_pairs()
        if pairs:
            decay = ema_decay_at(self.ema_decay, self.global_step)
            for ema, live in pairs:
                ema_update(ema, live, decay)
