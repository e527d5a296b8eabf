"""Tiny random DeepFloyd-IF-architecture cascades, built in-process and offline.

`base_model=tiny_if` uses these for tests and smoke runs: the classes and the architecture choices
of IF (a `T5EncoderModel` + `T5Tokenizer`; UNets with `ResnetDownsampleBlock2D` /
`SimpleCrossAttn*` blocks, GELU, scale-shift norm, a text projection `encoder_hid_dim` and a pooled
text embedding `addition_embed_type="text"`; a base UNet with learned variance, 3 -> 6 channels; an
SR UNet 6 -> 6 channels whose noise level enters through `class_embed_type="timestep"`; IF's cosine
schedules), thousands of times smaller, with weights drawn from a fixed seed so that a training run
and a later edit run rebuild exactly the same cascade.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from demo_world.tokenizer_vocab import BASIC_WORDS
from editing.models.cascade import SuperResolutionModel
from editing.models.diffusion_model import DiffusionModel

SPACE = "\u2581"  # SentencePiece's word-start marker, as in T5's vocabulary


def build_t5_tokenizer(
    words: Iterable[str] = BASIC_WORDS, model_max_length: int = 16
) -> T5Tokenizer:
    """A T5 tokenizer (SentencePiece-style Unigram model of the `tokenizers` library) in which each
    word of `words` is one piece.

    T5's layout: ids 0, 1, 2 are `<pad>`, `</s>`, `<unk>`; then "▁" + word pieces (log-prob -1),
    then single characters with and without the word-start marker (log-prob -10), so any text of
    ASCII letters, digits and punctuation tokenises; a sequence ends with `</s>`. No sentinel
    (`<extra_id_N>`) tokens: nothing here does span corruption.
    """
    pieces: dict[str, float] = {"<pad>": 0.0, "</s>": 0.0, "<unk>": 0.0, SPACE: -2.0}
    for word in sorted({w.lower() for w in words}):
        pieces.setdefault(SPACE + word, -1.0)
    for char in string.ascii_letters + string.digits + string.punctuation:
        pieces.setdefault(char, -10.0)
        pieces.setdefault(SPACE + char, -10.5)
    return T5Tokenizer(vocab=list(pieces.items()), extra_ids=0, model_max_length=model_max_length)


def if_schedulers() -> tuple[DDIMScheduler, DDPMScheduler]:
    """(sampling scheduler, image-noising scheduler) as DeepFloyd IF ships them: cosine betas
    ("squaredcos_cap_v2"), eps prediction; the sampling scheduler converted to DDIM with clipping
    and thresholding off, exactly as `editing.models.loading.load_scheduler` converts IF's folders."""
    ddpm = DDPMScheduler(
        variance_type="learned_range",
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        thresholding=True,
        dynamic_thresholding_ratio=0.95,
        sample_max_value=1.5,
    )
    # As read from a saved scheduler_config.json (diffusers' from_config would otherwise restore
    # the keys it lists under "_use_default_values" to DDIM's defaults, clip_sample=True).
    config = {k: v for k, v in ddpm.config.items() if k != "_use_default_values"}
    config.update(clip_sample=False, thresholding=False)
    return DDIMScheduler.from_config(config), DDPMScheduler(beta_schedule="squaredcos_cap_v2")


def if_unet(
    in_channels: int,
    sample_size: int,
    text_dim: int,
    block_out_channels: tuple[int, ...] = (32, 64),
    layers_per_block: int | tuple[int, ...] = 1,
    cross_attention_dim: int = 64,
    attention_head_dim: int = 8,
    norm_num_groups: int = 8,
    noise_level_embedding: bool = False,
    attention_levels: int | None = None,
) -> UNet2DConditionModel:
    """An IF-architecture UNet with learned variance (out = 2 x 3 channels): ResNet blocks at the
    first levels, joint self/cross attention (`SimpleCrossAttn*`) at the last `attention_levels`
    (default: all but the first) and in the middle."""
    levels = len(block_out_channels)
    attention_levels = levels - 1 if attention_levels is None else attention_levels
    attends = [i >= levels - attention_levels for i in range(levels)]
    down = ["SimpleCrossAttnDownBlock2D" if a else "ResnetDownsampleBlock2D" for a in attends]
    up = ["SimpleCrossAttnUpBlock2D" if a else "ResnetUpsampleBlock2D" for a in reversed(attends)]
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=6,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=attention_head_dim,
        norm_num_groups=norm_num_groups,
        encoder_hid_dim=text_dim,
        encoder_hid_dim_type="text_proj",
        addition_embed_type="text",
        addition_embed_type_num_heads=max(1, cross_attention_dim // 32),
        act_fn="gelu",
        resnet_time_scale_shift="scale_shift",
        cross_attention_norm="group_norm",
        class_embed_type="timestep" if noise_level_embedding else None,
    )


def build_tiny_if(
    name: str = "tiny_if",
    seed: int = 0,
    resolution: int = 16,
    sr_resolution: int | None = 32,
    noise_level: int = 250,
    text_dim: int = 32,
) -> DiffusionModel:
    """A tiny random IF cascade: base at `resolution` (learned variance) and, unless
    `sr_resolution` is None, an SR stage `resolution` -> `sr_resolution` sharing the T5 encoder.

    Identities: base `{name}-seed{seed}`, SR `{name}-sr{sr_resolution}-seed{seed}`.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = build_t5_tokenizer()
        text_encoder = T5EncoderModel(
            T5Config(
                vocab_size=len(tokenizer),
                d_model=text_dim,
                d_kv=8,
                d_ff=2 * text_dim,
                num_layers=2,
                num_heads=4,
                relative_attention_num_buckets=8,
                relative_attention_max_distance=16,
                feed_forward_proj="gated-gelu",
                dropout_rate=0.0,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                is_encoder_decoder=False,
                use_cache=False,
            )
        )
        base_unet = if_unet(3, resolution, text_dim)
        sr = None
        if sr_resolution is not None:
            sr_unet = if_unet(6, sr_resolution, text_dim, noise_level_embedding=True)
            scheduler, noise_scheduler = if_schedulers()
            sr = SuperResolutionModel(
                sr_unet.eval(),
                scheduler,
                noise_scheduler,
                name=f"{name}-sr{sr_resolution}-seed{seed}",
                noise_level=noise_level,
            )
    return DiffusionModel(
        base_unet.eval(),
        text_encoder.eval(),
        tokenizer,
        if_schedulers()[0],
        None,
        name=f"{name}-seed{seed}",
        resolution=resolution,
        text_attention_mask=True,
        sr=sr,
    ).freeze()
