"""Pretraining the demo model on the shapes world (`python train.py stage=pretrain_demo`).

The objective is the same denoising loss Imagic fine-tunes with (`editing.diffusion.objectives`), here over
captioned images from `demo_world.shapes_datamodule`, training the UNet and the text encoder together, with
caption dropout (the unconditional model for classifier-free guidance is the empty caption), min-SNR
loss weighting, linear warm-up, and an exponential moving average of the weights, which is what gets
exported (a diffusers folder, `<output_dir>/model`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from editing.diffusion.objectives import denoising_loss
from editing.io.edit_inputs import Inputs
from editing.models.diffusion_model import DiffusionModel
from lightning_modules.base import PretrainStage


class PretrainDemoStage(PretrainStage):
    """Train a text-to-image `DiffusionModel` from scratch on captioned images.

    Args:
        model: the freshly built model (`demo_world.demo_model.build_demo_model`).
        inputs: unused (the data come from the shapes datamodule); kept for the stage interface.
        num_steps: optimisation steps.
        batch_size: images per step (set on the datamodule; recorded here).
        lr: AdamW peak learning rate, reached after `warmup_steps`, then cosine decay to 10 %.
        caption_dropout: probability of training on the empty caption.
        snr_gamma: min-SNR-gamma weighting (None to disable).
        snr_floor: with `snr_gamma`, the smallest weight of the x0 error (None: none); lifts
            the high-noise steps where the layout is decided (`min_snr_weight`).
        ema_decay: EMA decay of the exported weights.
    """

    stage = "pretrain_demo"

    def __init__(
        self,
        model: DiffusionModel,
        inputs: Inputs | None = None,
        name: str = "pretrain_demo",
        num_steps: int = 6000,  # the shipped demo model's schedule
        batch_size: int = 32,
        lr: float = 1e-3,
        warmup_steps: int = 300,
        weight_decay: float = 0.01,
        caption_dropout: float = 0.1,
        snr_gamma: float | None = 5.0,
        snr_floor: float | None = None,
        ema_decay: float = 0.999,
    ) -> None:
        super().__init__()
        self.model = model
        self.num_steps = int(num_steps)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.warmup_steps = int(warmup_steps)
        self.weight_decay = float(weight_decay)
        self.caption_dropout = float(caption_dropout)
        self.snr_gamma = snr_gamma
        self.snr_floor = snr_floor
        self.ema_decay = float(ema_decay)
        model.requires_grad_(False)
        model.unet.requires_grad_(True)
        model.text_encoder.requires_grad_(True)
        self.ema = copy.deepcopy(
            nn.ModuleDict({"unet": model.unet, "text_encoder": model.text_encoder})
        )
        self.ema.requires_grad_(False)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        images: Tensor = batch["image"]
        captions = list(batch["caption"])
        b = images.shape[0]
        drop = torch.rand(b, generator=None) < self.caption_dropout
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        tokens = self.model.tokenize(captions, "caption")["input_ids"].to(self.device)
        emb = self.model.text_encoder(tokens)[0]
        t = torch.randint(0, self.model.num_train_timesteps, (b,), device=self.device)
        noise = torch.randn_like(images)
        loss = denoising_loss(
            self.model, images, emb, t, noise, snr_gamma=self.snr_gamma, snr_floor=self.snr_floor
        )
        self.log("loss", loss, prog_bar=True)
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # What the weights do not say: the UNet's target (`export_checkpoint` reads it back).
        checkpoint["prediction_type"] = self.model.prediction_type

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [
            (self.ema["unet"], self.model.unet),
            (self.ema["text_encoder"], self.model.text_encoder),
        ]

    def configure_optimizers(self):
        params = list(self.model.unet.parameters()) + list(self.model.text_encoder.parameters())
        return self.adamw_warmup_cosine(params)

    def ema_model(self) -> DiffusionModel:
        """The model with the EMA weights (what is exported and evaluated)."""
        m = self.model
        return DiffusionModel(
            self.ema["unet"],
            self.ema["text_encoder"],
            m.tokenizer,
            m.scheduler,
            m.vae,
            name=m.name,
            resolution=m.resolution,
        )

    def artifact_path(self, output_dir: str | Path) -> Path:
        return Path(output_dir) / "model"

    def export(self, output_dir: str | Path, full_state=None) -> Path:
        from editing.models.loading import save_model

        return save_model(self.ema_model(), self.artifact_path(output_dir))

    @torch.no_grad()
    def preview(self, num_inference_steps: int) -> list[tuple[str, Tensor]]:
        from editing.diffusion.noise import initial_noise
        from editing.diffusion.sampling import sample

        model = self.ema_model()
        prompts = [
            "a large red circle in the center on a gray background",
            "a small blue square at the top left on a white background",
        ]
        cond = model.encode_prompt(prompts)
        x = sample(
            model,
            cond,
            initial_noise([0, 1], model.latent_shape, self.device),
            num_inference_steps,
            3.0,
        )
        return [(p[:24], img) for p, img in zip(prompts, model.decode(x).clamp(-1, 1).cpu())]


def demo_architecture(state_dict: dict[str, Tensor]) -> dict:
    """The `build_demo_model` arguments of a `stage=pretrain_demo` checkpoint's weights: the
    UNet's channels per level, the text encoder's width, depth and context length."""
    prefix = "model.unet.down_blocks."
    levels = sorted(
        int(k[len(prefix) :].split(".")[0])
        for k in state_dict
        if k.startswith(prefix) and k.endswith(".resnets.0.conv2.weight")
    )
    channels = [int(state_dict[f"{prefix}{i}.resnets.0.conv2.weight"].shape[0]) for i in levels]
    positions = state_dict["model.text_encoder.embeddings.position_embedding.weight"]
    layers = {
        k.split(".")[4] for k in state_dict if k.startswith("model.text_encoder.encoder.layers.")
    }
    return {
        "block_out_channels": tuple(channels),
        "text_width": int(positions.shape[1]),
        "text_layers": len(layers),
        "context_length": int(positions.shape[0]),
    }


def export_checkpoint(checkpoint: str | Path, output_dir: str | Path) -> Path:
    """Write the EMA model of a `stage=pretrain_demo` Lightning checkpoint as a diffusers folder
    (`<output_dir>/model`): evaluate or ship an intermediate checkpoint.

        python -m lightning_modules.pretrain runs/demo/checkpoints/pretrain_demo/last.ckpt OUT
    """
    from demo_world.demo_model import build_demo_model
    from editing.io.checkpoints import load_checkpoint

    # Restricted unpickling: a checkpoint is data, never code (a crafted one is refused).
    state = load_checkpoint(checkpoint)
    if "state_dict" not in state:
        from editing.errors import UserInputError

        raise UserInputError(f"{checkpoint} has no state_dict: not a Lightning checkpoint")
    architecture = demo_architecture(state["state_dict"])
    prediction_type = str(state.get("prediction_type", "epsilon"))  # older checkpoints: eps
    stage = PretrainDemoStage(build_demo_model(**architecture, prediction_type=prediction_type))
    stage.load_state_dict(state["state_dict"])
    return stage.export(output_dir)


if __name__ == "__main__":
    import sys

    from editing.errors import UserInputError

    if len(sys.argv) != 3:
        sys.exit("usage: python -m lightning_modules.pretrain CKPT OUT")
    try:
        print(export_checkpoint(sys.argv[1], sys.argv[2]))
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
