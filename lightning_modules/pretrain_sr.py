"""Pretraining the demo super-resolution stage (`python train.py stage=pretrain_demo_sr`).

Data: captioned shapes-world scenes rendered at 64 px (the target) and at 32 px (the condition),
from generators in the same state, so both renders share every draw; the 32 px render is exactly
what the demo base model is trained on and generates, so the cascade's two stages meet on the same
distribution. Each step (Imagen / DeepFloyd IF stage II training, Saharia et al. 2022 Sec. 2.5):

    1. captions dropped to "" with probability `caption_dropout` (the unconditional branch of CFG);
       e = text_encoder(caption), the base model's encoder, frozen;
    2. t ~ U{0..T-1}, eps ~ N(0, I); augmentation level s ~ U{0..noise_level_max}, eps_aug ~ N(0, I);
       u_s = sqrt(a'_s) upsample(x_32) + sqrt(1 - a'_s) eps_aug;
    3. L = || eps - f(concat[x_t, u_s], t, e, s) ||^2, min-SNR weighted (`denoising_loss`).

Only the SR UNet trains (AdamW, warm-up + cosine); its EMA is exported as a folder `<output_dir>/sr`
that `base_model=demo_cascade base_model.sr_path=...` (or `assets/demo/sr`) loads.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from demo_world.demo_sr import build_demo_sr
from demo_world.shapes_datamodule import ShapesPairStream
from editing.diffusion.objectives import denoising_loss
from editing.io.edit_inputs import Inputs
from editing.models.diffusion_model import DiffusionModel
from lightning_modules.base import PretrainStage


class PretrainDemoSRStage(PretrainStage):
    """Train the demo SR stage from scratch for the demo base model `model`.

    Args:
        model: the trained demo base model (`base_model=demo`): its text encoder and tokenizer
            condition the SR stage and stay frozen; its resolution is the SR input's.
        inputs: unused (data come from the shapes pairs); kept for the stage interface.
        num_steps, batch_size, lr, warmup_steps, weight_decay, caption_dropout, snr_gamma,
            ema_decay: as `PretrainDemoStage`.
        noise_level_max: augmentation levels are drawn from U{0..noise_level_max}.
        arch: keyword arguments of `demo_world.demo_sr.build_demo_sr` (resolution, channels, ...).
    """

    stage = "pretrain_demo_sr"

    def __init__(
        self,
        model: DiffusionModel,
        inputs: Inputs | None = None,
        name: str = "pretrain_demo_sr",
        num_steps: int = 4000,
        batch_size: int = 16,
        lr: float = 1e-3,
        warmup_steps: int = 200,
        weight_decay: float = 0.01,
        caption_dropout: float = 0.1,
        snr_gamma: float | None = 5.0,
        ema_decay: float = 0.999,
        noise_level_max: int = 250,
        arch: dict | None = None,
    ) -> None:
        super().__init__()
        model.requires_grad_(False)
        self.model = model
        self.arch = dict(arch or {})
        self.sr = build_demo_sr(model, **self.arch)
        self.sr.unet.requires_grad_(True)
        self.noise_level_max = self.sr.check_level(int(noise_level_max))
        self.num_steps, self.batch_size = int(num_steps), int(batch_size)
        self.lr, self.warmup_steps = float(lr), int(warmup_steps)
        self.weight_decay, self.caption_dropout = float(weight_decay), float(caption_dropout)
        self.snr_gamma, self.ema_decay = snr_gamma, float(ema_decay)
        self.ema = copy.deepcopy(self.sr.unet).requires_grad_(False)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        high, low = batch["image"], batch["low_res"]
        b = high.shape[0]
        # 1. Text embeddings with caption dropout (frozen encoder).
        drop = (torch.rand(b) < self.caption_dropout).tolist()
        captions = ["" if d else c for c, d in zip(batch["caption"], drop)]
        emb = self.model.encode_prompt(captions, "caption").to(self.device)
        # 2. Diffusion noise and the low-res condition at a random augmentation level.
        t = torch.randint(0, self.sr.num_train_timesteps, (b,), device=self.device)
        level = torch.randint(0, self.noise_level_max + 1, (b,), device=self.device)
        image, level = self.sr.condition(low, torch.randn_like(high), level)
        # 3. The denoising loss of the bound SR stage.
        model = self.sr.bind(image, level)
        loss = denoising_loss(model, high, emb, t, torch.randn_like(high), self.snr_gamma)
        self.log("loss", loss, prog_bar=True)
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # What the weights do not say: the SR stage's architecture arguments, its UNet's target and
        # default augmentation level among them (`export_sr_checkpoint` reads them back).
        checkpoint["sr_arch"] = self.arch

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.ema, self.sr.unet)]

    def configure_optimizers(self):
        return self.adamw_warmup_cosine(self.sr.unet.parameters())

    def ema_sr(self):
        """The SR stage with the EMA weights (what is exported and evaluated)."""
        return self.sr.with_unet(self.ema)

    def artifact_path(self, output_dir: str | Path) -> Path:
        return Path(output_dir) / "sr"

    def export(self, output_dir: str | Path, full_state=None) -> Path:
        from editing.models.loading import save_sr_model

        return save_sr_model(self.ema_sr(), self.artifact_path(output_dir))

    @torch.no_grad()
    def preview(self, num_inference_steps: int) -> list[tuple[str, Tensor]]:
        from editing.models.cascade import super_resolve

        stream = ShapesPairStream(self.sr.resolution, self.model.resolution, seed=12345)
        pairs = [stream.sample(k) for k in range(2)]
        low = torch.stack([p["low_res"] for p in pairs])
        cond = self.model.encode_prompt([p["caption"] for p in pairs])
        uncond = self.model.encode_prompt([""])
        high = super_resolve(self.ema_sr(), low, cond, uncond, [0, 1], num_inference_steps, 3.0)
        panels = []
        for p, img in zip(pairs, high):
            panels += [("32 px", p["low_res"]), ("SR 64 px", img), ("true 64 px", p["image"])]
        return panels


def export_sr_checkpoint(
    checkpoint: str | Path, output_dir: str | Path, base: str | Path | None = None
) -> Path:
    """Write the EMA SR stage of a `stage=pretrain_demo_sr` Lightning checkpoint as a folder
    (`<output_dir>/sr`): evaluate or ship an intermediate checkpoint. `base` is the demo base model
    it was trained for (default: the shipped one; its frozen text encoder is in the checkpoint too).

        python -m lightning_modules.pretrain_sr runs/demo_sr/checkpoints/pretrain_demo_sr/last.ckpt OUT
    """
    from demo_world.demo_model import load_demo_model
    from editing.errors import UserInputError
    from editing.io.checkpoints import load_checkpoint

    # Restricted unpickling: a checkpoint is data, never code (a crafted one is refused).
    state = load_checkpoint(checkpoint)
    if "state_dict" not in state or "sr_arch" not in state:
        raise UserInputError(f"{checkpoint} is not a stage=pretrain_demo_sr Lightning checkpoint")
    stage = PretrainDemoSRStage(load_demo_model(base), arch=dict(state["sr_arch"]))
    stage.load_state_dict(state["state_dict"])
    return stage.export(output_dir)


if __name__ == "__main__":
    import sys

    from editing.errors import UserInputError

    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m lightning_modules.pretrain_sr CKPT OUT [BASE_MODEL_DIR]")
    try:
        print(export_sr_checkpoint(*sys.argv[1:]))
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
