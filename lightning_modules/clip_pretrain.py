"""Contrastive pretraining of the demo CLIP on the shapes world (`stage=pretrain_clip`).

A small open_clip model (a ViT image tower on 32x32 images, a transformer text tower over the
world's vocabulary with an offline tokenizer) trained with the symmetric InfoNCE loss of CLIP
(Radford et al. 2021, Fig. 3) on captioned images from `demo_world.shapes_datamodule`. Light pixel noise on the
images keeps it usable on the noisy x0 predictions Blended Diffusion guides. Exported with
`editing.models.clip.save_clip` to `<output_dir>/clip` (open_clip's local folder layout).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from open_clip.tokenizer import HFTokenizer
from torch import Tensor

from demo_world.tokenizer_vocab import build_clip_tokenizer
from demo_world.vocabulary import WORDS
from editing.models.clip import ClipModel, build_clip, save_clip
from lightning_modules.base import PretrainStage


def demo_clip(
    embed_dim: int = 64,
    image_size: int = 32,
    patch_size: int = 4,
    image_width: int = 128,
    image_layers: int = 4,
    text_width: int = 128,
    text_layers: int = 3,
    context_length: int = 32,
) -> ClipModel:
    """A randomly initialised demo CLIP with the world's tokenizer."""
    folder = Path(tempfile.mkdtemp(prefix="demo-clip-tokenizer-"))
    build_clip_tokenizer(WORDS, model_max_length=context_length).save_pretrained(folder)
    tokenizer = HFTokenizer(str(folder), context_length=context_length)
    model_cfg = {
        "embed_dim": embed_dim,
        "vision_cfg": {
            "image_size": image_size,
            "layers": image_layers,
            "width": image_width,
            "patch_size": patch_size,
            "head_width": 32,
        },
        "text_cfg": {
            "context_length": context_length,
            "vocab_size": len(tokenizer.tokenizer),
            "width": text_width,
            "heads": 4,
            "layers": text_layers,
        },
    }
    preprocess = {
        "size": image_size,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "resize_mode": "squash",
    }
    return build_clip(model_cfg, preprocess, tokenizer)


class PretrainClipStage(PretrainStage):
    """Train the demo CLIP; `export` writes it for `load_clip`.

    Args:
        model, inputs: unused (the stage trains its own model on the shapes datamodule).
        num_steps, batch_size: optimisation steps and captions per contrastive batch.
        lr, warmup_steps, weight_decay: AdamW with linear warm-up and cosine decay to 10 %.
        image_noise: max std of the Gaussian pixel noise added to training images ([0, 1] scale).
        arch: keyword arguments of `demo_clip`.
        init_from: an open_clip folder (`save_clip` layout) to start from instead of random weights.
    """

    stage = "pretrain_clip"

    def __init__(
        self,
        model=None,
        inputs=None,
        name: str = "pretrain_clip",
        num_steps: int = 3000,
        batch_size: int = 128,
        lr: float = 1e-3,
        warmup_steps: int = 200,
        weight_decay: float = 0.1,
        image_noise: float = 0.1,
        arch: dict | None = None,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.num_steps, self.batch_size = int(num_steps), int(batch_size)
        self.lr, self.warmup_steps, self.weight_decay = (
            float(lr),
            int(warmup_steps),
            float(weight_decay),
        )
        self.image_noise = float(image_noise)
        self.clip = demo_clip(**(arch or {}))
        if init_from:  # continue from a saved CLIP (a second, lower-lr phase)
            from editing.models.clip import load_clip

            trained = load_clip(init_from)
            self.clip.model.load_state_dict(trained.model.state_dict())

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        images = (batch["image"] + 1) / 2
        sigma = torch.rand(images.shape[0], 1, 1, 1, device=self.device) * self.image_noise
        images = (images + sigma * torch.randn_like(images)).clamp(0, 1)
        u = self.clip.encode_image(images)
        v = self.clip.encode_text(list(batch["caption"]))
        logits = self.clip.model.logit_scale.exp().clamp(max=100) * u @ v.T
        labels = torch.arange(len(logits), device=self.device)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        self.log("loss", loss, prog_bar=True)
        self.log("accuracy", (logits.argmax(1) == labels).float().mean(), prog_bar=True)
        return loss

    def configure_optimizers(self):
        return self.adamw_warmup_cosine(self.clip.parameters())

    def artifact_path(self, output_dir: str | Path) -> Path:
        return Path(output_dir) / "clip"

    def export(self, output_dir: str | Path, full_state=None) -> Path:
        self.clip.eval()
        return save_clip(self.clip, self.artifact_path(output_dir))
