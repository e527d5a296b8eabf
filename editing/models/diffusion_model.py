"""`DiffusionModel`: diffusers components behind the few operations the editing methods need.

Every method in this project talks to a text-to-image model through five calls:
`encode_prompt` (or `encode_condition`), `encode_image`, `decode`, `predict` (the network's native
output) and `eps` (that output converted to a noise prediction, whatever the checkpoint predicts).
A condition is token embeddings [B, L, D] or an `editing.diffusion.conditioning.Conditioning`
(SDXL's pooled embedding and time ids beside them, `editing.models.sdxl.SDXLModel`); the model turns
it into the UNet's keyword arguments in one place, `unet_conditioning`. Latent models
(Stable Diffusion) and pixel models (the demo model, DeepFloyd IF) look the same from outside: for a
pixel model `encode_image` and `decode` are the identity.

Loading lives in `editing/models/loading.py` (local folders, hub ids, single files) and the in-process tiny
components in `demo_world/tiny.py`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from editing.diffusion.conditioning import Conditioning, as_conditioning
from editing.diffusion.ddim import eps_from_v, v_target
from editing.errors import UserInputError

# What a UNet may predict: the targets `_to_eps` and `training_target` convert.
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "v_prediction")


@dataclass(frozen=True)
class ModelIdentity:
    """What an artifact records about the base model it was made with.

    `name` and `config_hash` must match for an artifact to be used; `weights_hash` (a fingerprint of
    a few weight tensors) is recorded too and reported when it differs.
    """

    name: str
    config_hash: str
    weights_hash: str


def _config_fingerprint(config) -> dict:
    """A component config as plain JSON without bookkeeping keys (versions, paths)."""
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    drop = {"transformers_version", "architectures", "dtype", "torch_dtype", "use_cache"}
    return {k: v for k, v in sorted(d.items()) if not k.startswith("_") and k not in drop}


def unet_downsampling(unet: nn.Module) -> int:
    """How many times a UNet halves its input: 2^(down blocks - 1) (the last block keeps its size)."""
    return 2 ** (len(unet.config.down_block_types) - 1)


def padded_token_ids(tokenizer, prompts: Sequence[str], limit: int, what: str) -> dict[str, Tensor]:
    """`tokenizer`'s ids [B, limit] (padded) and attention mask of `prompts`; a prompt longer than
    `limit` tokens is refused with its token count."""
    for prompt in prompts:
        n = len(tokenizer(prompt, truncation=False).input_ids)
        if n > limit:
            raise UserInputError(
                f"{what} {prompt[:40]!r}... is {n} tokens long; this model's text encoder takes at "
                f"most {limit} (start/end tokens included). Shorten it."
            )
    batch = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=limit,
        truncation=True,
        return_tensors="pt",
    )
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}


class DiffusionModel(nn.Module):
    """A text-conditioned diffusion model (latent or pixel space) with eps-normalised outputs.

    Args:
        unet: a diffusers `UNet2DConditionModel` (or compatible) predicting eps, v, or eps + variance
            (learned-variance models output 2C channels; the first C are eps).
        text_encoder: a transformers text encoder; its last hidden state conditions the UNet.
        tokenizer: the text encoder's tokenizer.
        scheduler: a diffusers DDIM-compatible scheduler: the source of alphas_cumprod, the
            prediction type and the timestep spacing.
        vae: an `AutoencoderKL` for latent models, None for pixel models.
        name: the model's identity for artifacts ("sd15", "demo", "tiny-seed0", ...).
        resolution: the image size the model works at (pixels); default from the UNet config.
        text_attention_mask: pass the tokenizer's attention mask to the text encoder (T5 models).
        sr: the optional super-resolution stage of a pixel cascade (DeepFloyd IF stage II, see
            `editing.models.cascade.SuperResolutionModel`); it shares this model's text encoder. It is not
            part of `identity`: artifacts made with it record its own identity (`sr_metadata`).
    """

    # False for a model without a text encoder (`editing.models.unconditional`): only methods
    # that need no text conditioning run on it (`editing.editors.apply.check_conditioning`).
    text_conditioned = True
    # What its UNet is conditioned on, recorded in artifacts (`editing.io.artifacts`): "text" =
    # one encoder's token embeddings (SD 1.x/2.x, IF, the demo model); `SDXLModel` says "sdxl".
    conditioning_kind = "text"

    def __init__(
        self,
        unet: nn.Module,
        text_encoder: nn.Module | None,
        tokenizer,
        scheduler,
        vae: nn.Module | None = None,
        *,
        name: str,
        resolution: int | None = None,
        text_attention_mask: bool = False,
        sr: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.text_encoder = text_encoder
        self.vae = vae
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.name = name
        self.text_attention_mask = text_attention_mask
        self.register_buffer(
            "alphas_cumprod", scheduler.alphas_cumprod.to(torch.float32).clone(), persistent=False
        )
        sample_size = unet.config.sample_size
        if isinstance(sample_size, (list, tuple)):
            sample_size = sample_size[0]
        self.resolution = int(resolution or sample_size * self.vae_scale_factor)
        if self.resolution % self.vae_scale_factor:
            raise UserInputError(
                f"resolution {self.resolution} is not a multiple of the VAE factor {self.vae_scale_factor}"
            )
        self._identity: ModelIdentity | None = None
        self.sr = sr
        self.compile_unet = False
        self.compile_backend = "inductor"
        self._compiled: tuple[nn.Module, nn.Module] | None = None

    # ----------------------------------------------------------------------------------- facts
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler.config.prediction_type)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    @property
    def is_latent(self) -> bool:
        return self.vae is not None

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else 1

    @property
    def sample_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def learned_variance(self) -> bool:
        """True when the UNet outputs eps and a variance (2C channels), as DeepFloyd IF does."""
        return int(self.unet.config.out_channels) == 2 * self.sample_channels

    @property
    def size_multiple(self) -> int:
        """Every working side (pixels) must be a multiple of this: the VAE factor x the UNet's
        downsampling (SD 1.x/2.x: 8 x 8 = 64), and, on a cascade, what makes the SR stage's side
        (x `sr_factor`) a multiple of its own UNet's downsampling."""
        multiple = self.vae_scale_factor * unet_downsampling(self.unet)
        if self.sr is not None:
            sr_multiple = unet_downsampling(self.sr.unet)
            multiple = math.lcm(multiple, sr_multiple // math.gcd(sr_multiple, self.sr_factor))
        return multiple

    @property
    def sr_factor(self) -> int:
        """The SR stage's side / this model's side (a cascade's upscaling factor)."""
        return max(1, round(self.sr.resolution / self.resolution))

    def sample_shape(self, size: tuple[int, int] | None = None) -> tuple[int, int, int]:
        """(C, h, w) of the samples the UNet denoises for a working image of `size` = (H, W)
        pixels (default: the square native resolution)."""
        height, width = size or (self.resolution, self.resolution)
        f = self.vae_scale_factor
        return (self.sample_channels, height // f, width // f)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the samples the UNet denoises at the native (square) resolution."""
        return self.sample_shape()

    @property
    def tokenizers(self) -> tuple:
        """Every tokenizer whose tokens the UNet's cross-attention keys are (one here; SDXL: two)."""
        return (self.tokenizer,)

    @property
    def max_prompt_tokens(self) -> int:
        return int(self.tokenizer.model_max_length)

    def _identity_configs(self) -> dict:
        """The component configs the identity's config hash covers."""
        return {
            "unet": _config_fingerprint(self.unet.config),
            "text_encoder": (
                _config_fingerprint(self.text_encoder.config)
                if self.text_encoder is not None
                else None
            ),
            "vae": _config_fingerprint(self.vae.config) if self.vae is not None else None,
            "scheduler": _config_fingerprint(self.scheduler.config),
            "resolution": self.resolution,
        }

    @property
    def identity(self) -> ModelIdentity:
        if self._identity is None:
            configs = self._identity_configs()
            blob = json.dumps(configs, sort_keys=True, default=str).encode()
            weights = hashlib.sha256()
            for tensor in self._fingerprint_tensors():
                weights.update(tensor.detach().to("cpu", torch.float16).numpy().tobytes())
            self._identity = ModelIdentity(
                self.name, hashlib.sha256(blob).hexdigest()[:16], weights.hexdigest()[:16]
            )
        return self._identity

    def _fingerprint_tensors(self) -> list[Tensor]:
        params = dict(self.unet.named_parameters())
        picked = [params[k] for k in ("conv_in.weight", "conv_out.weight") if k in params]
        if self.text_encoder is None:
            return picked
        embeddings = self.text_encoder.get_input_embeddings().weight
        return picked + [embeddings[:16]]

    # ------------------------------------------------------------------------------------ text
    def tokenize(self, prompts: Sequence[str], what: str = "prompt") -> dict[str, Tensor]:
        """Token ids [B, L] (padded to the encoder's length) and the attention mask.

        A prompt longer than the encoder's context is refused with its token count: silently
        dropping its end would change the edit without telling the user.
        """
        return padded_token_ids(self.tokenizer, prompts, self.max_prompt_tokens, what)

    @torch.no_grad()
    def encode_prompt(self, prompts: str | Sequence[str], what: str = "prompt") -> Tensor:
        """Text embeddings [B, L, D] (fp32): the text encoder's last hidden state."""
        if isinstance(prompts, str):
            prompts = [prompts]
        tokens = self.tokenize(prompts, what)
        device = self.text_encoder.device
        mask = tokens["attention_mask"].to(device) if self.text_attention_mask else None
        out = self.text_encoder(tokens["input_ids"].to(device), attention_mask=mask)
        return out[0].float()

    def encode_condition(self, prompts: str | Sequence[str], what: str = "prompt") -> Conditioning:
        """The full UNet condition of `prompts`: here the token embeddings [B, L, D] alone
        (`encode_prompt`); SDXL adds its pooled embedding."""
        return Conditioning(self.encode_prompt(prompts, what))

    # ----------------------------------------------------------------------------------- image
    @torch.no_grad()
    def encode_image(self, x: Tensor) -> Tensor:
        """Image [B, 3, H, W] in [-1, 1] -> sample z0 [B, C, h, w] (fp32).

        Latent models take the posterior *mean* (deterministic, as inversion needs) times
        `vae.config.scaling_factor`; pixel models return the image.
        """
        if self.vae is None:
            return x.float()
        vae = self.vae
        posterior = vae.encode(x.to(vae.device, vae.dtype)).latent_dist
        z = posterior.mean.float()
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (z - shift) * vae.config.scaling_factor

    def decode(self, z: Tensor) -> Tensor:
        """Sample [B, C, h, w] -> image [B, 3, H, W], nominally in [-1, 1] (not clamped), fp32."""
        if self.vae is None:
            return z.float()
        vae = self.vae
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        z = z.float() / vae.config.scaling_factor + shift
        return vae.decode(z.to(vae.device, vae.dtype)).sample.float()

    # ----------------------------------------------------------------------------------- UNet
    def _timesteps(self, t: Tensor | int, batch: int) -> Tensor:
        t = torch.as_tensor(t, device=self.alphas_cumprod.device, dtype=torch.long)
        return t.expand(batch) if t.dim() == 0 else t

    def predict(self, x_t: Tensor, t: Tensor | int, emb: Tensor, **unet_kwargs) -> Tensor:
        """The network's native prediction (eps or v) for [B, C, h, w] samples, fp32.

        For learned-variance models the variance channels are dropped: only the mean
        parametrisation enters the DDIM maths and the denoising loss (`predict_with_variance`
        keeps them).
        """
        return self.predict_with_variance(x_t, t, emb, **unet_kwargs)[0]

    def predict_with_variance(
        self, x_t: Tensor, t: Tensor | int, emb: Tensor, **unet_kwargs
    ) -> tuple[Tensor, Tensor | None]:
        """(native prediction [B, C, h, w], variance channels [B, C, h, w] or None), fp32.

        The variance channels are the raw network output v in [-1, 1] of a learned-variance UNet
        (IDDPM's interpolation weight, `editing.diffusion.ddpm.learned_range_variance`); None
        for a model that does not predict its variance.
        """
        out = self._unet_output(x_t, self._timesteps(t, x_t.shape[0]), emb, **unet_kwargs)
        if self.learned_variance:
            c = self.sample_channels
            return out[:, :c].float(), out[:, c:].float()
        return out.float(), None

    def unet_conditioning(self, emb: Tensor | Conditioning, x_t: Tensor) -> dict:
        """The UNet keyword arguments of a condition for samples x_t [B, C, h, w]: the token
        embeddings as `encoder_hidden_states` (in the UNet's dtype). A model without a pooled
        text input refuses a condition that carries one."""
        cond = as_conditioning(emb)
        if cond.pooled is not None or cond.time_ids is not None:
            raise UserInputError(
                f"base model {self.name!r} takes token embeddings only, not an SDXL condition "
                f"(pooled embedding, time ids)"
            )
        return {"encoder_hidden_states": cond.tokens.to(self.dtype)}

    def set_compile(self, enabled: bool, backend: str = "inductor") -> DiffusionModel:
        """Run the UNet through `torch.compile(unet, backend=backend)` (`compile=true`) or
        eagerly; returns self. `backend`: "inductor" (generated kernels; the first call of each
        input shape compiles, minutes on a CPU) or "aot_eager" (traced graphs run by eager
        kernels: no speed-up, seconds to compile, what the tests use to check the tracing).

        The UNet module itself is left as it is (no in-place `Module.compile`): every call of
        `predict` goes through a compiled wrapper of the current `self.unet`, made on first use.
        So a deep copy of the UNet (a fine-tune, fine-tuned weights applied by an editor) runs its
        own weights, and models made by `with_unet` compile their UNet too. Attention processors
        installed later (Prompt-to-Prompt's `attention_control`) are seen by the compiled call;
        their controlled layers run eagerly (`editing.attention.processor`)."""
        if (self.compile_unet, self.compile_backend) != (bool(enabled), str(backend)):
            self.compile_unet, self.compile_backend = bool(enabled), str(backend)
            self._compiled = None
        return self

    def unet_callable(self) -> nn.Module:
        """The UNet as `predict` calls it: `self.unet`, or its compiled wrapper (`set_compile`)."""
        if not self.compile_unet:
            return self.unet
        if self._compiled is None or self._compiled[0] is not self.unet:
            self._compiled = (self.unet, torch.compile(self.unet, backend=self.compile_backend))
        return self._compiled[1]

    def _unet_output(
        self, x_t: Tensor, t: Tensor, emb: Tensor | Conditioning, **unet_kwargs
    ) -> Tensor:
        """The UNet's raw output [B, C or 2C, h, w] for timesteps t [B], conditioned on emb."""
        dtype = self.dtype
        cond = self.unet_conditioning(emb, x_t)
        return self.unet_callable()(x_t.to(dtype), t, return_dict=False, **cond, **unet_kwargs)[0]

    def eps(self, x_t: Tensor, t: Tensor | int, emb: Tensor, **unet_kwargs) -> Tensor:
        """Noise prediction eps_theta(x_t, t, emb) [B, C, h, w] (fp32) for any prediction type."""
        return self._to_eps(self.predict(x_t, t, emb, **unet_kwargs), x_t, t)

    def eps_with_variance(
        self, x_t: Tensor, t: Tensor | int, emb: Tensor, **unet_kwargs
    ) -> tuple[Tensor, Tensor | None]:
        """(eps [B, C, h, w], variance channels or None) from one UNet call (`predict_with_variance`)."""
        out, v = self.predict_with_variance(x_t, t, emb, **unet_kwargs)
        return self._to_eps(out, x_t, t), v

    def _to_eps(self, out: Tensor, x_t: Tensor, t: Tensor | int) -> Tensor:
        if self.prediction_type == "epsilon":
            return out
        if self.prediction_type == "v_prediction":
            a_t = self.alphas_cumprod[self._timesteps(t, x_t.shape[0])]
            return eps_from_v(out, x_t, a_t)
        raise NotImplementedError(f"prediction type {self.prediction_type!r} is not supported")

    def training_target(self, z0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """The target of `predict` for the denoising loss: eps, or v for v-prediction models."""
        if self.prediction_type == "epsilon":
            return noise.float()
        if self.prediction_type == "v_prediction":
            return v_target(z0, noise, self.alphas_cumprod[t])
        raise NotImplementedError(f"prediction type {self.prediction_type!r} is not supported")

    # ------------------------------------------------------------------------------- variants
    def with_unet(self, unet: nn.Module) -> DiffusionModel:
        """A model that shares every component with this one (the SR stage too) except the UNet.

        Editors apply fine-tuned weights this way, so the base model object is never mutated.
        """
        other = DiffusionModel(
            unet,
            self.text_encoder,
            self.tokenizer,
            self.scheduler,
            self.vae,
            name=self.name,
            resolution=self.resolution,
            text_attention_mask=self.text_attention_mask,
            sr=self.sr,
        )
        other._identity = self.identity
        other.compile_unet, other.compile_backend = self.compile_unet, self.compile_backend
        return other.to(self.device)

    def freeze(self) -> DiffusionModel:
        """Turn off gradients for every component (the starting point of every stage)."""
        self.requires_grad_(False)
        self.eval()
        return self
