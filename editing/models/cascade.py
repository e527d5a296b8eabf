"""Pixel cascades: a base `DiffusionModel` plus a text-conditioned super-resolution stage.

Imagen and DeepFloyd IF generate at 64x64 and upsample with diffusion models conditioned on the
low-resolution image, its noise level and the text. At every denoising step the SR UNet sees
(diffusers' `IFSuperResolutionPipeline`, steps 7-8):

    u   = upsample(x_low)                           bilinear, align_corners=True, to H x W
    u_s = sqrt(a'_s) u + sqrt(1 - a'_s) eps_aug     noise augmentation at level s, with a' the
                                                    alpha-bar of the *image-noising* scheduler
    f(concat([x_t, u_s], dim=1), t, text, class_labels=s)   noisy high-res first, 2C channels

eps_aug is drawn once per sample, not per step. The output is eps (for learned-variance UNets such
as IF-II, eps and a variance: only the first C channels are kept, see `SuperResolutionModel.predict`).

The SR stage shares the base model's text encoder: it is an `nn.Module` holding only its UNet and
schedulers, attached to the base as `DiffusionModel.sr`. Imagic (Kawar et al. 2023, Sec. 3)
fine-tunes it on (downsampled input, input) conditioned on e_tgt and feeds it e_tgt at inference.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from editing.diffusion.ddim import add_noise
from editing.diffusion.sampling import sample
from editing.errors import UserInputError, check_range
from editing.models.diffusion_model import DiffusionModel, ModelIdentity, _config_fingerprint

IMAGE_CHANNELS = 3
SR_CHOICES = ("auto", "finetuned", "pretrained", "none")


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def upsample(low_res: Tensor, size: int | tuple[int, int]) -> Tensor:
    """[B, C, h, w] -> [B, C, H, W] (`size`: (H, W) or a side): the SR conditioning's upsampling
    (IF: bilinear with align_corners=True)."""
    return F.interpolate(low_res.float(), _pair(size), mode="bilinear", align_corners=True)


def upscale_output(images: Tensor, size: int | tuple[int, int]) -> Tensor:
    """`method.sr=none`: base outputs [B, 3, h, w] in [-1, 1] -> [B, 3, H, W], bicubic
    (align_corners=False), clamped to [-1, 1] (bicubic overshoots at edges)."""
    up = F.interpolate(images.float(), _pair(size), mode="bicubic", align_corners=False)
    return up.clamp(-1, 1)


def sr_size(model: DiffusionModel, size: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of the SR stage's output for a base-stage image of `size` = (h, w)."""
    f = model.sr_factor
    return (int(size[0]) * f, int(size[1]) * f)


class SuperResolutionModel(nn.Module):
    """The super-resolution stage of a pixel cascade, with eps-normalised outputs.

    Args:
        unet: a diffusers `UNet2DConditionModel` with in_channels = 2C (noisy sample + upsampled
            low-res image) and, for noise-level conditioning, `class_embed_type="timestep"`.
        scheduler: DDIM-compatible scheduler of the SR diffusion (alphas, prediction type).
        noise_scheduler: the scheduler whose alpha-bar noises the upsampled image (IF's
            `image_noising_scheduler`); default `scheduler`.
        name: identity for artifacts. resolution: output side (default: the UNet's sample size).
        noise_level: default augmentation level s of the low-res image at inference (IF-II: 250).

    Call `bind(image, level)` (from `condition`) to get the model that `sample`, `guided_eps` and
    `denoising_loss` use like any `DiffusionModel`: `predict(x_t, t, emb)`.
    """

    # The eps / v conversions, devices and scheduler facts are exactly DiffusionModel's.
    device = DiffusionModel.device
    dtype = DiffusionModel.dtype
    prediction_type = DiffusionModel.prediction_type
    num_train_timesteps = DiffusionModel.num_train_timesteps
    learned_variance = DiffusionModel.learned_variance
    _timesteps = DiffusionModel._timesteps
    eps = DiffusionModel.eps
    _to_eps = DiffusionModel._to_eps
    training_target = DiffusionModel.training_target

    def __init__(
        self,
        unet: nn.Module,
        scheduler,
        noise_scheduler=None,
        *,
        name: str,
        resolution: int | None = None,
        noise_level: int = 250,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.scheduler = scheduler
        self.noise_scheduler = noise_scheduler if noise_scheduler is not None else scheduler
        self.name = name
        cumprod = scheduler.alphas_cumprod.to(torch.float32).clone()
        self.register_buffer("alphas_cumprod", cumprod, persistent=False)
        noise_cumprod = self.noise_scheduler.alphas_cumprod.to(torch.float32).clone()
        self.register_buffer("noise_alphas_cumprod", noise_cumprod, persistent=False)
        sample_size = unet.config.sample_size
        sample_size = sample_size[0] if isinstance(sample_size, (list, tuple)) else sample_size
        self.resolution = int(resolution or sample_size)
        if self.sample_channels < 1 or int(unet.config.in_channels) != 2 * self.sample_channels:
            raise UserInputError(
                f"super-resolution UNet {name!r} takes {unet.config.in_channels} input channels; "
                f"a cascade's SR stage takes {2 * IMAGE_CHANNELS} (noisy image + upsampled low-res)"
            )
        self.noise_level = self.check_level(noise_level)
        self._condition: tuple[Tensor, Tensor] | None = None
        self._identity: ModelIdentity | None = None

    # ----------------------------------------------------------------------------------- facts
    @property
    def sample_channels(self) -> int:
        return int(self.unet.config.in_channels) - IMAGE_CHANNELS

    def sample_shape(self, size: tuple[int, int] | None = None) -> tuple[int, int, int]:
        """(C, H, W) of the SR samples for an output of `size` (default: the native square)."""
        height, width = size or (self.resolution, self.resolution)
        return (self.sample_channels, int(height), int(width))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.sample_shape()

    @property
    def identity(self) -> ModelIdentity:
        """Name, hash of the UNet/scheduler configs and resolution, and a weights fingerprint."""
        if self._identity is None:
            configs = {
                "unet": _config_fingerprint(self.unet.config),
                "scheduler": _config_fingerprint(self.scheduler.config),
                "noise_scheduler": _config_fingerprint(self.noise_scheduler.config),
                "resolution": self.resolution,
            }
            blob = json.dumps(configs, sort_keys=True, default=str).encode()
            weights = hashlib.sha256()
            params = dict(self.unet.named_parameters())
            for key in ("conv_in.weight", "conv_out.weight"):
                if key in params:
                    weights.update(params[key].detach().to("cpu", torch.float16).numpy().tobytes())
            self._identity = ModelIdentity(
                self.name, hashlib.sha256(blob).hexdigest()[:16], weights.hexdigest()[:16]
            )
        return self._identity

    def check_level(self, level: int) -> int:
        """An augmentation level s in [0, T') of the image-noising scheduler, or UserInputError."""
        top = len(self.noise_alphas_cumprod)
        if (
            isinstance(level, bool)
            or not isinstance(level, (int, np.integer))
            or not 0 <= level < top
        ):
            raise UserInputError(f"SR noise level {level!r} must be an integer in [0, {top})")
        return int(level)

    # ----------------------------------------------------------------------------- condition
    def condition(
        self, low_res: Tensor, noise: Tensor, level: int | Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(u_s [B, C, H, W], s [B]): the upsampled low-res image [B, C, h, w] noised to level s
        (default `self.noise_level`; an int or per-sample [B] int64) with `noise` [B, C, H, W],
        whose size (H, W) is the output's."""
        batch, device = low_res.shape[0], noise.device
        level = self.noise_level if level is None else level
        level = torch.as_tensor(level, dtype=torch.long, device=device)
        level = level.expand(batch) if level.dim() == 0 else level
        a_s = self.noise_alphas_cumprod.to(device)[level]
        up = upsample(low_res.to(device), tuple(noise.shape[-2:]))
        return add_noise(up, noise.float(), a_s), level

    def bind(self, image: Tensor, level: Tensor) -> SuperResolutionModel:
        """This model with its low-res condition fixed (shares every component)."""
        other = self.with_unet(self.unet)
        other._condition = (image.to(self.device), level.to(self.device))
        return other

    def predict(self, x_t: Tensor, t: Tensor | int, emb: Tensor, **unet_kwargs) -> Tensor:
        """The native prediction [B, C, H, W] (fp32) for x_t [B, C, H, W] and text emb [B, L, D].

        A condition for B / k samples is repeated k times (classifier-free guidance batches
        [uncond; cond] for the same images). Learned-variance UNets output [eps, v]: only eps
        (the first C channels) enters the DDIM maths and the loss; the variance is not trained.
        """
        if self._condition is None:
            raise RuntimeError("SuperResolutionModel.predict needs a condition: use bind() first")
        image, level = self._condition
        reps, rest = divmod(x_t.shape[0], image.shape[0])
        if rest:
            raise ValueError(f"batch {x_t.shape[0]} is not a multiple of {image.shape[0]} images")
        image, level = image.repeat(reps, 1, 1, 1), level.repeat(reps)
        t = self._timesteps(t, x_t.shape[0])
        dtype = self.dtype
        inputs = torch.cat([x_t.to(image), image], dim=1).to(dtype)
        out = self.unet(
            inputs,
            t,
            encoder_hidden_states=emb.to(dtype),
            class_labels=level,
            return_dict=False,
            **unet_kwargs,
        )[0]
        if self.learned_variance:
            out = out[:, : self.sample_channels]
        return out.float()

    # ------------------------------------------------------------------------------ variants
    def with_unet(self, unet: nn.Module) -> SuperResolutionModel:
        """An SR stage sharing the schedulers with this one but with another UNet."""
        other = SuperResolutionModel(
            unet,
            self.scheduler,
            self.noise_scheduler,
            name=self.name,
            resolution=self.resolution,
            noise_level=self.noise_level,
        )
        other._identity = self.identity
        return other.to(self.device)

    def freeze(self) -> SuperResolutionModel:
        self.requires_grad_(False)
        self.eval()
        return self


def require_sr(model: DiffusionModel, what: str) -> SuperResolutionModel:
    """The SR stage of `model`, or a UserInputError naming `what` needed it."""
    if getattr(model, "sr", None) is None:
        raise UserInputError(
            f"{what} needs a cascade, but base model {model.name!r} has no super-resolution stage "
            f"(base_model=tiny_if | demo_cascade | deepfloyd_if base_model.sr_path=...)"
        )
    return model.sr


def with_sr(model: DiffusionModel, sr: SuperResolutionModel | None) -> DiffusionModel:
    """`model` (sharing all its components and identity) with another SR stage."""
    other = model.with_unet(model.unet)
    other.sr = sr
    return other


def sr_metadata(sr: SuperResolutionModel) -> dict[str, str]:
    """The SR stage's identity facts as artifact metadata (besides the base's)."""
    ident = sr.identity
    return {
        "sr_model": ident.name,
        "sr_config_hash": ident.config_hash,
        "sr_weights_hash": ident.weights_hash,
        "sr_resolution": str(sr.resolution),
    }


def sr_generator(seed: int) -> torch.Generator:
    """The CPU generator of a sample's SR draws (x_T, then eps_aug): seeded by (seed, "sr"), so they
    are independent of the base stage's x_T for the same seed."""
    state = np.random.SeedSequence([int(seed), 0x5352]).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] % (2**63 - 1)))


@torch.no_grad()
def super_resolve(
    sr: SuperResolutionModel,
    low_res: Tensor,
    cond: Tensor,
    uncond: Tensor,
    seeds: list[int],
    num_inference_steps: int,
    guidance_scale: float,
    noise_level: int | None = None,
    progress: bool = False,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """Super-resolve low_res [B, 3, h, w] in [-1, 1] -> [B, 3, H, W] in [-1, 1] (CPU); (H, W) =
    `size` (`sr_size`, default the SR stage's native square).

    1. Per seed: x_T and eps_aug [C, H, W] from `sr_generator(seed)`.
    2. u_s = noised upsampled low-res at level s (`noise_level`, default the model's).
    3. Guided DDIM sampling of the SR UNet with text cond [B or 1, L, D] and uncond [1, L, D],
       x0 clipped to [-1, 1] at every step (what a pixel scheduler's `clip_sample` does).
    """
    device = sr.device
    shape = sr.sample_shape(size)
    draws = [torch.randn((2, *shape), generator=sr_generator(s)) for s in seeds]
    x_T, eps_aug = torch.stack(draws).to(device).unbind(dim=1)
    level = sr.noise_level if noise_level is None else sr.check_level(noise_level)
    image, levels = sr.condition(low_res, eps_aug, level)
    cond = cond.to(device).expand(len(seeds), -1, -1)
    x = sample(
        sr.bind(image, levels),
        cond,
        x_T,
        num_inference_steps,
        guidance_scale,
        uncond.to(device),
        progress,
        clip_x0=True,
    )
    return x.clamp(-1, 1).cpu()


@dataclass(frozen=True)
class SuperResolutionSettings:
    """How an edit's base-stage results are super-resolved on a cascade (`sr.*` of edit.py).

    Attributes:
        num_inference_steps: DDIM steps of the SR stage (IF-II default 50).
        guidance_scale: its classifier-free guidance weight (IF-II default 4.0).
    """

    num_inference_steps: int = 50
    guidance_scale: float = 4.0

    def __post_init__(self) -> None:
        check_range(int(self.num_inference_steps), "sr.num_inference_steps", 1, 1000)
        check_range(float(self.guidance_scale), "sr.guidance_scale", 0.0, None)


def super_resolve_results(
    model: DiffusionModel,
    results: list,
    seed: int,
    settings: SuperResolutionSettings = SuperResolutionSettings(),
) -> list:
    """Base-stage `EditResult`s of a cascade, super-resolved with each result's own prompt by the
    pretrained SR stage; unchanged without SR."""
    from editing.io.outputs import EditResult

    sr = getattr(model, "sr", None)
    if sr is None:
        return results
    uncond = model.encode_prompt([""])
    out = []
    for r in results:
        cond = model.encode_prompt([r.params.get("prompt", "")])
        image = super_resolve(
            sr,
            r.image[None],
            cond,
            uncond,
            [seed],
            int(settings.num_inference_steps),
            float(settings.guidance_scale),
            size=sr_size(model, r.image.shape[-2:]),
        )[0]
        params = {**r.params, "sr": "pretrained", "sr_noise_level": sr.noise_level}
        out.append(EditResult(image, r.label, params, r.score))
    return out
