"""Fine-tuning a stage's UNet: what Imagic's base and super-resolution fine-tunes share.

`UnetFinetune` is a mixin for a `StageModule` whose `self.model.unet` trains (a copy, never the
base model's own UNet). It validates the settings, makes the UNet trainable (all weights, or LoRA
adapters on its attention projections; Hu et al. 2021), optionally turns on gradient
checkpointing, builds the optimiser over what trains, and exports the result (full weights in
`save_dtype`, or the adapters only) with `editing.models.unet_weights.export_unet_weights`.
A LoRA fine-tune also writes its adapter in diffusers' format beside the artifact,
`<output_dir>/<stage>_diffusers_lora/pytorch_lora_weights.safetensors`
(`editing.models.diffusers_lora`), which `pipeline.load_lora_weights(folder)` loads.
The stage sets `self.lr` and `self.optimizer_name`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import Tensor, nn

from editing.errors import UserInputError
from editing.io.artifacts import save_artifact
from editing.models.diffusers_lora import save_diffusers_lora
from editing.models.diffusion_model import DiffusionModel
from editing.models.unet_weights import add_lora, export_unet_weights
from lightning_modules.base import make_optimizer

FINETUNE_MODES = ("full", "lora")
FINETUNE_MODE_SETTINGS = ("auto", *FINETUNE_MODES)
"""What `stage.finetune_mode` accepts: "auto" becomes a mode by model (`AUTO_FINETUNE_MODE`)."""
SAVE_DTYPES = ("float32", "float16", "bfloat16")

AUTO_FINETUNE_MODE = {"text": "full", "sdxl": "lora"}
"""`finetune_mode=auto` by the model's `conditioning_kind`: the full fine-tune (the paper) on
SD-type models; LoRA on SDXL, whose 2.6B-parameter UNet does not fit a full fine-tune on one common
GPU: fp32 weights, gradients and Adam's two moments take 16 bytes a parameter, over 40 GB before
any activation at 1024 px, while LoRA trains a few percent of the weights (README, SDXL).
`finetune_mode=full` still runs the full fine-tune there."""

FINETUNE_LR = {"full": 5e-7, "lora": 1e-4}
"""The learning rate of each mode when `lr` is not given: 5e-7 for the full fine-tune (the paper,
Stable Diffusion), 1e-4 for LoRA adapters (the usual LoRA rate; 5e-7 barely moves them)."""

log = logging.getLogger(__name__)


def check_finetune_settings(finetune_mode: str, save_dtype: str) -> None:
    """Refuse a fine-tune mode or artifact dtype that the fine-tune does not know."""
    if finetune_mode not in FINETUNE_MODES:
        raise UserInputError(f"stage.finetune_mode={finetune_mode!r} is not one of 'full', 'lora'")
    if save_dtype not in SAVE_DTYPES:
        raise UserInputError(f"stage.save_dtype={save_dtype!r} is not float32, float16 or bfloat16")


def resolve_finetune_defaults(
    model: DiffusionModel, finetune_mode: str, lr: float | None
) -> tuple[str, float]:
    """(mode, lr) with "auto" replaced by the model's default (`AUTO_FINETUNE_MODE`) and a
    missing lr by the mode's (`FINETUNE_LR`); the one place those defaults apply."""
    if finetune_mode == "auto":
        finetune_mode = AUTO_FINETUNE_MODE.get(getattr(model, "conditioning_kind", "text"), "full")
    if lr is None:
        lr = FINETUNE_LR.get(finetune_mode, FINETUNE_LR["full"])
    return finetune_mode, float(lr)


class UnetFinetune:
    """Mixin of the stages that fine-tune `self.model.unet` (list it before the stage base)."""

    finetune_mode: str
    save_dtype: str
    lora: dict

    def setup_unet_finetune(
        self,
        unet: nn.Module,
        finetune_mode: str,
        lora_rank: int,
        lora_alpha: float | None,
        lora_targets: list[str] | tuple[str, ...],
        gradient_checkpointing: bool,
        save_dtype: str,
    ) -> None:
        """Record the fine-tune settings and make `unet` trainable (in place).

        LoRA adapters are initialised from the global torch generator: call this at the same point
        of the stage's construction on every run."""
        self.finetune_mode = finetune_mode
        self.lora = {"rank": int(lora_rank), "alpha": lora_alpha, "targets": list(lora_targets)}
        self.save_dtype = save_dtype
        if finetune_mode == "lora":
            add_lora(unet, lora_rank, lora_alpha, tuple(lora_targets))
        else:
            unet.requires_grad_(True)
        self.gradient_checkpointing = bool(gradient_checkpointing)  # applied by StageModule.setup

    def configure_optimizers(self):
        params = [p for p in self.model.unet.parameters() if p.requires_grad]
        return make_optimizer(self.optimizer_name, params, self.lr)

    def finetune_hparams(self) -> dict:
        """The fine-tune's settings, as recorded in the artifact's hparams."""
        return {
            "finetune_mode": self.finetune_mode,
            "lora": self.lora,
            "save_dtype": self.save_dtype,
        }

    @staticmethod
    def unet_state(full_state: dict[str, Tensor] | None) -> dict[str, Tensor] | None:
        """The UNet's weights from a gathered LightningModule state dict (FSDP), else None."""
        if full_state is None:
            return None
        prefix = "model.unet."
        return {k[len(prefix) :]: v for k, v in full_state.items() if k.startswith(prefix)}

    def unet_weights(
        self, full_state: dict[str, Tensor] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, str]]:
        """(tensors, metadata) of the fine-tuned weights: the full state dict or the adapters.
        `full_state` is the gathered state dict of a sharded (FSDP) run."""
        return export_unet_weights(
            self.model.unet,
            self.finetune_mode,
            self.save_dtype,
            self.lora,
            state_dict=self.unet_state(full_state),
        )

    def diffusers_lora_folder(self, output_dir: str | Path) -> Path:
        """Where a LoRA fine-tune writes its adapter in diffusers' format."""
        return Path(output_dir) / f"{self.stage}_diffusers_lora"

    def export(self, output_dir: str | Path, full_state: dict[str, Tensor] | None = None) -> Path:
        """Write the artifact (and, for LoRA, the diffusers-format adapter first: the artifact,
        written last, marks a complete export); returns the artifact's path."""
        tensors, metadata = self.artifact_with_input(full_state)
        if self.finetune_mode == "lora":
            lora_path = save_diffusers_lora(
                self.diffusers_lora_folder(output_dir), tensors, self.lora
            )
            log.info(
                "wrote %s (diffusers: pipe.load_lora_weights(%r))", lora_path, str(lora_path.parent)
            )
        return save_artifact(self.artifact_path(output_dir), tensors, metadata)
