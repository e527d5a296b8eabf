"""The demo world's text-to-image model: architecture and where the shipped weights live.

A small pixel-space diffusion model (diffusers `UNet2DConditionModel` + a transformers
`CLIPTextModel` + an offline `CLIPTokenizer` over the world's vocabulary) trained by
`python train.py stage=pretrain_demo` on the procedural shapes world. It is saved in diffusers
folder format under `assets/demo/model` and loaded by `base_model=demo` through the same loading
code as real checkpoints (`editing.models.loading.load_model`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from demo_world.asset_paths import ASSETS_DIR
from demo_world.tokenizer_vocab import build_clip_tokenizer
from editing.models.diffusion_model import PREDICTION_TYPES, DiffusionModel

ASSETS = ASSETS_DIR / "demo"
DEMO_MODEL_DIR = ASSETS / "model"


def demo_scheduler(prediction_type: str = "epsilon") -> DDIMScheduler:
    """DDPM's linear betas (1e-4 .. 0.02, 1000 steps): a terminal SNR near zero, so pixel images
    with large flat areas (the world's backgrounds) do not leak through x_T. `prediction_type`:
    what the UNet predicts, "epsilon" or "v_prediction"."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def build_demo_model(
    name: str = "demo",
    resolution: int = 32,
    block_out_channels: tuple[int, ...] = (32, 64, 64),
    text_width: int = 128,
    text_layers: int = 3,
    context_length: int = 32,
    prediction_type: str = "epsilon",
    seed: int = 0,
) -> DiffusionModel:
    """A freshly initialised (untrained) demo model; `stage=pretrain_demo` trains it.

    The UNet works on 3-channel pixels with cross-attention at every level but the first (the
    32x32 level uses plain ResNet blocks: attention over 1024 positions costs most of a CPU step).
    """
    from demo_world.vocabulary import WORDS

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = build_clip_tokenizer(WORDS, model_max_length=context_length)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=text_width,
                intermediate_size=4 * text_width,
                num_hidden_layers=text_layers,
                num_attention_heads=4,
                max_position_embeddings=context_length,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        levels = len(block_out_channels)
        unet = UNet2DConditionModel(
            sample_size=resolution,
            in_channels=3,
            out_channels=3,
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
            up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
            block_out_channels=tuple(block_out_channels),
            layers_per_block=1,
            cross_attention_dim=text_width,
            attention_head_dim=8,
            norm_num_groups=8,
        )
    return DiffusionModel(
        unet,
        text_encoder,
        tokenizer,
        demo_scheduler(prediction_type),
        None,
        name=name,
        resolution=resolution,
    )


def load_demo_model(
    path: str | Path | None = None, name: str = "demo", prediction_type: str | None = None
) -> DiffusionModel:
    """The shipped demo model (or one trained elsewhere), through the regular loading code.

    `prediction_type` (default: the folder's scheduler's) re-targets the UNet's output, e.g.
    "v_prediction" for an eps model about to be fine-tuned with `stage=pretrain_demo` to predict
    v: the weights are unchanged, only what the scheduler and the loss read them as."""
    from editing.editors import settings
    from editing.errors import UserInputError
    from editing.models.loading import load_model

    if prediction_type is not None:
        settings.choice(prediction_type, "base_model.prediction_type", PREDICTION_TYPES)
    folder = Path(path) if path else DEMO_MODEL_DIR
    if not (folder / "model_index.json").is_file():
        raise UserInputError(
            f"no demo model at {folder}: train one with `python train.py stage=pretrain_demo "
            f"output_dir=runs/demo` and pass base_model.path=runs/demo/model"
        )
    model = load_model(str(folder), name=name)
    if prediction_type is not None and prediction_type != model.prediction_type:
        model.scheduler = DDIMScheduler.from_config(
            model.scheduler.config, prediction_type=prediction_type
        )
    return model
