"""Full-size architectures with random weights, for speed and memory benchmarks.

Speed and memory do not depend on the weights, so these configurations (copied from the public
model cards' config files: layer widths, depths, attention sizes) let the benchmarks measure the
real costs without downloading anything.
"""

from __future__ import annotations

import contextlib

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from demo_world.tiny import sd_scheduler
from demo_world.tokenizer_vocab import build_clip_tokenizer
from editing.models.diffusion_model import DiffusionModel
from editing.models.loading import weights_dtype
from editing.models.sdxl import SDXL_VAE_DTYPE, SDXLModel


def sd_vae(resolution: int, scaling_factor: float = 0.18215) -> AutoencoderKL:
    """The KL autoencoder of Stable Diffusion 1.x/2.x and SDXL (84M; factor 8, 4 latent
    channels): the families differ only in their latent `scaling_factor` (SD 0.18215, SDXL
    0.13025) and the tile size `sample_size` (their native resolution)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=resolution,
        scaling_factor=scaling_factor,
    )


def clip_text_config(tokenizer, width: int, layers: int, heads: int, **extra) -> CLIPTextConfig:
    """A CLIP text transformer over the 49408-token vocabulary and 77-token context: `layers`
    blocks of `heads` heads, hidden size `width`, MLP 4 x `width`; `extra` (e.g. `hidden_act`,
    `projection_dim`) passes through (default activation quick_gelu: OpenAI's CLIP)."""
    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def clip_vit_l_text(tokenizer) -> CLIPTextModel:
    """OpenAI CLIP ViT-L/14's text encoder (12 layers, 768 wide, 123M): SD 1.x's, and SDXL's
    first."""
    return CLIPTextModel(clip_text_config(tokenizer, 768, 12, 12))


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
    vae = sd_vae(resolution)
    tokenizer = build_clip_tokenizer()
    text_encoder = clip_vit_l_text(tokenizer)
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
    vae = sd_vae(resolution)
    tokenizer = build_clip_tokenizer()
    text_encoder = CLIPTextModel(clip_text_config(tokenizer, 1024, 23, 16, hidden_act="gelu"))
    for part in (unet, vae, text_encoder):
        part.to(dtype)
    model = DiffusionModel(
        unet,
        text_encoder,
        tokenizer,
        sd_scheduler("v_prediction"),
        vae,
        name="sd21-random",
        resolution=resolution,
    )
    return model.freeze()


def sdxl_unet(resolution: int = 1024) -> UNet2DConditionModel:
    """SDXL 1.0 base's UNet (2.57B; its unet/config.json): three levels of 320, 640, 1280
    channels, 2 ResNet blocks each, no attention at the first level, then 2 and 10 transformer
    blocks per attention layer (10 in the middle block too), 64-wide heads (5, 10, 20 heads),
    linear projections, cross-attention on the 2048-wide concatenated token embeddings, and the
    "text_time" added embedding: the pooled embedding (1280) plus 6 time ids x 256 Fourier
    features = 2816 inputs."""
    return UNet2DConditionModel(
        sample_size=resolution // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    )


def sdxl_model(
    resolution: int = 1024,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> SDXLModel:
    """Stable Diffusion XL 1.0 base as an `SDXLModel` with random weights, at 1024 px:

        unet            `sdxl_unet`                                        2,567,463,684
        vae             SD's (`sd_vae`), latent factor 0.13025                83,653,863
        text_encoder    CLIP ViT-L/14 (12 layers, 768 wide)                  123,060,480
        text_encoder_2  OpenCLIP ViT-bigG/14 (32 layers of 20 heads, 1280
                        wide, MLP 5120) with its 1280-wide projection        694,659,840
                                                                    in all 3,468,837,867

    parameters (the published configs' sizes, counted on the meta device,
    `tests/benchmarks/test_sdxl_architecture.py`). The UNet and text encoders are stored in
    `dtype`, the VAE in `SDXL_VAE_DTYPE` (float32) as the model loader keeps it.
    `device="meta"` builds the modules without storage (shapes and counts only: in fp32 the
    weights take 13.9 GB)."""
    tokenizer, tokenizer_2 = build_clip_tokenizer(), build_clip_tokenizer()
    where = torch.device(device) if device is not None else contextlib.nullcontext()
    with where:
        unet = sdxl_unet(resolution)
        vae = sd_vae(resolution, scaling_factor=0.13025)
        text_encoder = clip_vit_l_text(tokenizer)
        text_encoder_2 = CLIPTextModelWithProjection(
            clip_text_config(tokenizer_2, 1280, 32, 20, hidden_act="gelu", projection_dim=1280)
        )
    for part in (unet, text_encoder, text_encoder_2):  # the schedule buffers stay fp32
        part.to(dtype)
    vae.to(weights_dtype(SDXL_VAE_DTYPE))
    model = SDXLModel(
        unet,
        text_encoder,
        text_encoder_2,
        tokenizer,
        tokenizer_2,
        sd_scheduler(),
        vae,
        name="sdxl-random",
        resolution=resolution,
    )
    return model.freeze()


ARCHS = ("tiny", "tiny_v", "tiny_pixel", "tiny_sdxl", "demo", "sd15", "sd21", "sdxl", "adm256")
LATENT_ARCHS = ("tiny", "tiny_v", "tiny_sdxl", "demo", "sd15", "sd21", "sdxl")
"""The `--arch` choices of the latent-model benchmarks (tiny_v: the tiny v-prediction model;
tiny_sdxl: `demo_world.tiny_sdxl`, the reduced stand-in of sdxl)."""


def model_for(
    arch: str, resolution: int | None = None, dtype: torch.dtype = torch.float32
) -> DiffusionModel:
    """One of `ARCHS` as a frozen model with random (or
    shipped demo) weights. Pixel models: tiny_pixel, demo, adm256. `dtype` stores the UNet and
    text encoders, and the VAE except on SDXL (`SDXL_VAE_DTYPE`)."""
    if arch == "tiny_sdxl":
        from demo_world.tiny_sdxl import build_tiny_sdxl

        return build_tiny_sdxl(  # 32 px as configs/base_model/tiny_sdxl.yaml
            resolution=resolution or 32,
            dtype=str(dtype).removeprefix("torch."),
            vae_dtype=SDXL_VAE_DTYPE,
        )
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
    if arch == "sdxl":
        return sdxl_model(resolution or 1024, dtype)
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
