"""Full-size architectures with random weights, for speed and memory benchmarks.

Speed and memory do not depend on the weights, so these configurations (copied from the public
model cards' config files: layer widths, depths, attention sizes) let the benchmarks measure the
real costs without downloading anything.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel

from demo_world.tiny import sd_scheduler
from demo_world.tokenizer_vocab import build_clip_tokenizer
from editing.models.diffusion_model import DiffusionModel


def sd15_model(resolution: int = 512, dtype: torch.dtype = torch.float32) -> DiffusionModel:
    """Stable Diffusion 1.5's UNet (860M), VAE (84M) and CLIP ViT-L/14 text encoder (123M)."""
    unet = UNet2DConditionModel(
        sample_size=resolution // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=resolution,
    )
    tokenizer = build_clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    for part in (unet, vae, text_encoder):  # not the model: its schedule buffers stay fp32
        part.to(dtype)
    model = DiffusionModel(
        unet,
        text_encoder,
        tokenizer,
        sd_scheduler(),
        vae,
        name="sd15-random",
        resolution=resolution,
    )
    return model.freeze()


def sd21_model(resolution: int = 768, dtype: torch.dtype = torch.float32) -> DiffusionModel:
    """Stable Diffusion 2.1's UNet (865M; linear projections, head widths 5/10/20/20 x 64,
    1024-wide cross-attention), its VAE (as SD 1.5's) and the OpenCLIP ViT-H/14 text encoder
    (23 layers, 1024 wide, 354M), with v-prediction, at 768 px."""
    unet = UNet2DConditionModel(
        sample_size=resolution // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
    )
    base = sd15_model(resolution, dtype)  # VAE and tokenizer as SD 1.x
    tokenizer = base.tokenizer
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            max_position_embeddings=77,
            hidden_act="gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    for part in (unet, text_encoder):
        part.to(dtype)
    model = DiffusionModel(
        unet,
        text_encoder,
        tokenizer,
        sd_scheduler("v_prediction"),
        base.vae,
        name="sd21-random",
        resolution=resolution,
    )
    return model.freeze()


ARCHS = ("tiny", "tiny_v", "tiny_pixel", "demo", "sd15", "sd21", "adm256")
LATENT_ARCHS = ("tiny", "tiny_v", "demo", "sd15", "sd21")
"""The `--arch` choices of the latent-model benchmarks (tiny_v: the tiny v-prediction model)."""


def model_for(
    arch: str, resolution: int | None = None, dtype: torch.dtype = torch.float32
) -> DiffusionModel:
    """One of `ARCHS` as a frozen model with random (or
    shipped demo) weights. Pixel models: tiny_pixel, demo, adm256."""
    if arch in ("tiny", "tiny_v", "tiny_pixel"):
        from demo_world.tiny import build_tiny_model

        default = 16 if arch == "tiny_pixel" else 32  # as configs/base_model/tiny*.yaml
        return build_tiny_model(
            resolution=resolution or default,
            latent=arch != "tiny_pixel",
            prediction_type="v_prediction" if arch == "tiny_v" else "epsilon",
            dtype=str(dtype).removeprefix("torch."),
        )
    if arch == "demo":
        from demo_world.demo_model import build_demo_model

        return build_demo_model().freeze()
    if arch == "sd15":
        return sd15_model(resolution or 512, dtype)
    if arch == "sd21":
        return sd21_model(resolution or 768, dtype)
    if arch == "adm256":
        return adm256_model(resolution or 256)
    raise ValueError(f"unknown architecture {arch!r}")


# --- pixel-space Blended Diffusion: an ADM-sized unconditional UNet ----------------------------


class UnconditionalUNet(nn.Module):
    """A diffusers `UNet2DModel` behind the conditional call `DiffusionModel` makes: the text
    embedding is accepted and ignored (Blended Diffusion's model is unconditional)."""

    def __init__(self, unet: UNet2DModel) -> None:
        super().__init__()
        self.unet = unet

    @property
    def config(self):
        return self.unet.config

    def forward(self, sample, timestep, encoder_hidden_states=None, return_dict=False, **kwargs):
        del encoder_hidden_states, kwargs
        return self.unet(sample, timestep, return_dict=return_dict)


def adm256_unet(resolution: int = 256) -> UNet2DModel:
    """guided-diffusion's 256x256 unconditional ImageNet UNet (Dhariwal & Nichol 2021), the model
    of Blended Diffusion, as a diffusers `UNet2DModel`: 256 base channels, channel multipliers
    (1, 1, 2, 2, 4, 4), 2 residual blocks per level, self-attention at 32, 16 and 8 px with
    64-channel heads, residual up/down-sampling, scale-shift norm, learned sigma (6 output
    channels). `parameter_count` gives 552.8M (the brief: ~550M, the paper's model size)."""
    return UNet2DModel(
        sample_size=resolution,
        in_channels=3,
        out_channels=6,
        down_block_types=("ResnetDownsampleBlock2D",) * 3 + ("AttnDownBlock2D",) * 3,
        up_block_types=("AttnUpBlock2D",) * 3 + ("ResnetUpsampleBlock2D",) * 3,
        block_out_channels=(256, 256, 512, 512, 1024, 1024),
        layers_per_block=2,
        attention_head_dim=64,
        downsample_type="resnet",
        upsample_type="resnet",
        resnet_time_scale_shift="scale_shift",
        norm_num_groups=32,
        flip_sin_to_cos=True,
        freq_shift=0,
    )


def adm256_model(resolution: int = 256, dtype: torch.dtype = torch.float32) -> DiffusionModel:
    """A pixel `DiffusionModel` around `adm256_unet` with ADM's linear betas (1e-4 .. 0.02, 1000
    steps). Its text encoder is a one-layer stub: the UNet ignores the embedding."""
    from demo_world.demo_model import demo_scheduler

    tokenizer = build_clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    model = DiffusionModel(
        UnconditionalUNet(adm256_unet(resolution)),
        text_encoder,
        tokenizer,
        demo_scheduler(),
        None,
        name="adm256-random",
        resolution=resolution,
    )
    return model.to(dtype=dtype).freeze()


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- CLIP for guidance and ranking --------------------------------------------------------------

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def clip_for(arch: str, device: torch.device | str = "cpu", seed: int = 0):
    """A frozen random CLIP: "tiny" (the tests' one-layer model) or "vit-b-16" (open_clip's
    ViT-B/16 configuration, 150M parameters, 224 px, the model Blended Diffusion guides with)."""
    import open_clip

    from editing.models.clip import build_clip

    if arch == "tiny":
        cfg = TINY_CLIP
    elif arch == "vit-b-16":
        cfg = open_clip.get_model_config("ViT-B-16")
    else:
        raise ValueError(f"unknown CLIP architecture {arch!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clip = build_clip(cfg, device=device)
    return clip.eval().requires_grad_(False)


# --- running a model the way the benchmarks measure it -------------------------------------------


def prepare(
    model: DiffusionModel,
    device: torch.device | str,
    channels_last: bool = False,
    compile_unet: bool = False,
) -> DiffusionModel:
    """Move `model` to `device`; on CUDA allow TF32 matmuls (as train.py does); optionally
    channels_last memory format (UNet and VAE) and `torch.compile` of the UNet
    (`DiffusionModel.set_compile`: the module stays as it is, so `model.unet.config`, the attention
    processors and deep copies of it are unaffected). Attention runs through
    diffusers' default processor (PyTorch SDPA) unless an editor installs its own."""
    model = model.to(device)
    if torch.device(device).type == "cuda":
        torch.set_float32_matmul_precision("high")
    if channels_last:
        model.unet.to(memory_format=torch.channels_last)
        if model.vae is not None:
            model.vae.to(memory_format=torch.channels_last)
    if compile_unet:
        model.set_compile(True)
    return model


def autocast(device: torch.device | str, precision: str):
    """The compute context of a precision: "32-true" (none) or "bf16-mixed" (bf16 autocast with
    fp32 weights, Lightning's meaning)."""
    if precision not in ("32-true", "bf16-mixed"):
        raise ValueError(f"precision must be 32-true or bf16-mixed, got {precision!r}")
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")


def attention_kind(model: DiffusionModel) -> str:
    """The class name(s) of the UNet's attention processors (e.g. AttnProcessor2_0 = SDPA)."""
    from diffusers.models.attention_processor import Attention

    kinds = {type(m.processor).__name__ for m in model.unet.modules() if isinstance(m, Attention)}
    return "+".join(sorted(kinds)) or "none"
