"""The model flags of an OpenAI guided-diffusion (ADM, Dhariwal & Nichol 2021) checkpoint.

A guided-diffusion `.pt` file holds only weights; the architecture is given by the command-line
flags it was trained with (`guided_diffusion/script_util.py`). `ADMFlags` holds those flags, with the
defaults of the unconditional 256x256 ImageNet model that Blended Diffusion edits with
(`256x256_diffusion_uncond.pt`):

    attention_resolutions 32,16,8  class_cond False  diffusion_steps 1000  image_size 256
    learn_sigma True  noise_schedule linear  num_channels 256  num_head_channels 64
    num_res_blocks 2  resblock_updown True  use_fp16 True  use_scale_shift_norm True

and derives from them the ADM layout (channels per level, where attention sits, heads) and the
equivalent diffusers `UNet2DModel` configuration and noise schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from editing.errors import UserInputError

# script_util.create_model's channel multipliers when channel_mult is "".
_DEFAULT_CHANNEL_MULT = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
}
NORM_GROUPS = 32  # ADM's GroupNorm32
NORM_EPS = 1e-5  # torch's GroupNorm default, as ADM uses it
NUM_CLASSES = 1000  # ImageNet, for class_cond models


def _numbers(value: Any, key: str) -> tuple[float, ...]:
    """ "32,16,8", [32, 16, 8] or 32 as a tuple of numbers (refused in one line otherwise)."""
    if isinstance(value, str):
        items: Sequence[Any] = [v for v in value.replace(" ", "").split(",") if v]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        items = [value]
    else:
        items = list(value or [])
    try:
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise UserInputError(
            f"base_model.{key}={value!r} is not a comma-separated list of numbers"
        ) from None


@dataclass(frozen=True)
class ADMFlags:
    """guided-diffusion model flags (script_util names); defaults: 256x256_diffusion_uncond.pt.

    `channel_mult` "" (or empty) means script_util's default for `image_size`;
    `attention_resolutions` are feature-map sizes (32 = attention where the map is 32x32).
    `use_fp16` is how ADM ran the torso, not a property of the weights (stored as fp32); it is
    recorded and otherwise unused (`base_model.dtype` chooses the precision here).
    """

    image_size: int = 256
    num_channels: int = 256
    num_res_blocks: int = 2
    channel_mult: str | Sequence[float] = ""
    attention_resolutions: str | Sequence[int] = "32,16,8"
    num_heads: int = 4
    num_head_channels: int = 64
    num_heads_upsample: int = -1
    learn_sigma: bool = True
    class_cond: bool = False
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    use_new_attention_order: bool = False
    use_fp16: bool = True
    diffusion_steps: int = 1000
    noise_schedule: str = "linear"

    def __post_init__(self) -> None:
        for key in ("image_size", "num_channels", "num_res_blocks", "diffusion_steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"base_model.{key} must be a positive integer, got {value!r}")
        for key in ("num_heads", "num_head_channels", "num_heads_upsample"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value == 0 or value < -1:
                raise UserInputError(f"base_model.{key} must be a positive integer or -1")
        for key in (
            "learn_sigma",
            "class_cond",
            "use_scale_shift_norm",
            "resblock_updown",
            "use_new_attention_order",
            "use_fp16",
        ):
            if not isinstance(getattr(self, key), bool):
                raise UserInputError(f"base_model.{key} must be true or false")
        if self.noise_schedule not in ("linear", "cosine"):
            raise UserInputError(
                f"base_model.noise_schedule={self.noise_schedule!r} is not one of linear, cosine"
            )
        if not _numbers(self.channel_mult, "channel_mult") and (
            self.image_size not in _DEFAULT_CHANNEL_MULT
        ):
            raise UserInputError(
                f"base_model.channel_mult is empty and image_size={self.image_size} has no "
                f"default (guided-diffusion's are for {sorted(_DEFAULT_CHANNEL_MULT)}): give it"
            )
        self.block_channels()
        self.attention_head_dim()

    # --------------------------------------------------------------------------- ADM layout
    def multipliers(self) -> tuple[float, ...]:
        """The channel multiplier of each level (script_util's default for the size if "")."""
        given = _numbers(self.channel_mult, "channel_mult")
        return given or tuple(float(m) for m in _DEFAULT_CHANNEL_MULT[self.image_size])

    def block_channels(self) -> tuple[int, ...]:
        """Channels of each level, int(mult * num_channels) (ADM's rounding)."""
        channels = tuple(int(m * self.num_channels) for m in self.multipliers())
        bad = [c for c in channels if c < 1 or c % NORM_GROUPS]
        if bad:
            raise UserInputError(
                f"base_model.num_channels x channel_mult gives {channels}: every level must be a "
                f"positive multiple of {NORM_GROUPS} (ADM's group norm)"
            )
        return channels

    def attention_levels(self) -> tuple[bool, ...]:
        """Per level: does it have attention (ADM: image_size // resolution in the
        downsampling rates 1, 2, 4, ... of the levels)."""
        rates = {
            self.image_size // int(r)
            for r in _numbers(self.attention_resolutions, "attention_resolutions")
        }
        return tuple(2**level in rates for level in range(len(self.multipliers())))

    def heads(self, channels: int, upsampling: bool = False) -> int:
        """Attention heads of a block with `channels` channels (ADM's AttentionBlock rule)."""
        if self.num_head_channels != -1:
            return channels // self.num_head_channels
        if upsampling and self.num_heads_upsample != -1:
            return self.num_heads_upsample
        return self.num_heads

    def attention_head_dim(self) -> int:
        """The one head width of every attention block (diffusers' UNet2DModel has one for all).

        Refused when ADM's flags give blocks of different widths (fixed `num_heads` over levels of
        different channels), which a UNet2DModel cannot represent."""
        channels = self.block_channels()
        blocks = [(channels[-1], False)]  # the middle block
        for level, attends in enumerate(self.attention_levels()):
            if attends:
                blocks += [(channels[level], False), (channels[level], True)]
        widths = set()
        for ch, up in blocks:
            heads = self.heads(ch, up)
            if ch % heads:
                raise UserInputError(
                    f"attention over {ch} channels does not split into {heads} heads "
                    f"(base_model.num_head_channels / num_heads)"
                )
            widths.add(ch // heads)
        if len(widths) != 1:
            raise UserInputError(
                f"these flags give attention heads of widths {sorted(widths)}; diffusers' "
                f"UNet2DModel has one head width for all blocks: give base_model.num_head_channels"
            )
        return widths.pop()

    # ----------------------------------------------------------------------- diffusers side
    def unet_config(self) -> dict[str, Any]:
        """The `UNet2DModel` keyword arguments of the same network.

        ResBlocks -> ResnetBlock2D (scale-shift norm -> `resnet_time_scale_shift="scale_shift"`),
        `resblock_updown` -> resnet down/upsamplers (`ResnetDownsampleBlock2D`,
        `ResnetUpsampleBlock2D`, and `downsample_type="resnet"` for the attention blocks), else
        strided-conv / nearest+conv resamplers; timestep embedding [cos, sin] of num_channels
        frequencies (`flip_sin_to_cos`, `freq_shift=0`); 2 x 3 output channels when learn_sigma.
        """
        channels = self.block_channels()
        if channels[0] != self.num_channels:
            raise UserInputError(
                f"channel_mult starts with {self.multipliers()[0]}: ADM then embeds the timestep "
                f"with {self.num_channels} frequencies but its first level has {channels[0]} "
                f"channels, which diffusers' UNet2DModel cannot represent (it ties the two)"
            )
        attention = self.attention_levels()
        updown = self.resblock_updown
        down = ("ResnetDownsampleBlock2D" if updown else "DownBlock2D", "AttnDownBlock2D")
        up = ("ResnetUpsampleBlock2D" if updown else "UpBlock2D", "AttnUpBlock2D")
        return {
            "sample_size": self.image_size,
            "in_channels": 3,
            "out_channels": 6 if self.learn_sigma else 3,
            "flip_sin_to_cos": True,
            "freq_shift": 0,
            "down_block_types": tuple(down[a] for a in attention),
            "up_block_types": tuple(up[a] for a in reversed(attention)),
            "block_out_channels": channels,
            "layers_per_block": self.num_res_blocks,
            "downsample_type": "resnet" if updown else "conv",
            "upsample_type": "resnet" if updown else "conv",
            "act_fn": "silu",
            "attention_head_dim": self.attention_head_dim(),
            "norm_num_groups": NORM_GROUPS,
            "attn_norm_num_groups": NORM_GROUPS,
            "norm_eps": NORM_EPS,
            "resnet_time_scale_shift": "scale_shift" if self.use_scale_shift_norm else "default",
            "num_class_embeds": NUM_CLASSES if self.class_cond else None,
        }

    def scheduler_config(self) -> dict[str, Any]:
        """DDIM scheduler settings with the training betas: ADM's linear schedule (betas from
        1e-4 to 0.02, scaled by 1000 / diffusion_steps) or its cosine one
        (diffusers' "squaredcos_cap_v2" is the same alpha-bar, betas capped at 0.999)."""
        common = {
            "num_train_timesteps": self.diffusion_steps,
            "prediction_type": "epsilon",
            "clip_sample": False,
            "thresholding": False,
            "set_alpha_to_one": False,
        }
        if self.noise_schedule == "cosine":
            return {**common, "beta_schedule": "squaredcos_cap_v2"}
        scale = 1000 / self.diffusion_steps
        return {
            **common,
            "beta_schedule": "linear",
            "beta_start": scale * 1e-4,
            "beta_end": scale * 0.02,
        }
