"""`SDXLModel`: Stable Diffusion XL (Podell et al. 2023) behind the `DiffusionModel` operations.

SDXL's UNet is conditioned on three things (paper Sec. 2.1-2.2):

    c_tok   = [h1_{-2}(p) ; h2_{-2}(p)]   [B, 77, D1 + D2]  the penultimate hidden states of both
                                                           text encoders, concatenated
    c_pool  = proj2(h2(p)[eot])           [B, P]           the second encoder's projected
                                                           end-of-text embedding (pooled)
    c_size  = (h_orig, w_orig, top, left, h_tgt, w_tgt)    [B, 6] the size/crop micro-conditioning

c_tok goes to cross-attention; c_pool and the Fourier features of c_size enter the time embedding
(`addition_embed_type="text_time"`). `encode_condition` returns (c_tok, c_pool) as a
`Conditioning`; c_size is derived at each UNet call from the working size of the samples
(original = target = the working size, no crop: `size_time_ids`), which is what SDXL's reference
pipeline uses when it is given nothing else, unless the condition carries its own time ids.

The unconditional ("") condition is all zeros, tokens and pooled, when the checkpoint says
`force_zeros_for_empty_prompt` (SDXL 1.0 base does): the reference pipeline's negative
conditioning when no negative prompt is given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from editing.diffusion.conditioning import Conditioning, as_conditioning
from editing.errors import UserInputError
from editing.models.diffusion_model import DiffusionModel, _config_fingerprint, padded_token_ids

SDXL_VAE_DTYPE = "float32"
"""The storage dtype of an SDXL VAE unless `base_model.vae_dtype` says otherwise: SDXL 1.0's VAE
overflows in float16."""

FORCE_ZEROS_FOR_EMPTY_PROMPT = True
"""`force_zeros_for_empty_prompt` of a checkpoint that does not say (SDXL 1.0 base says true)."""

TIME_IDS = ("original_height", "original_width", "crop_top", "crop_left", "height", "width")
"""The six size/crop numbers of SDXL's micro-conditioning, in the UNet's order."""


def size_time_ids(
    size: tuple[int, int],
    original: tuple[int, int] | None = None,
    crop_top_left: tuple[int, int] = (0, 0),
) -> Tensor:
    """SDXL's time ids [1, 6] (fp32) for a target `size` = (H, W) pixels: (original H, W (default
    `size`), crop top, left, H, W) (paper Sec. 2.2)."""
    original = original or size
    values = (*original, *crop_top_left, *size)
    return torch.tensor([[float(v) for v in values]], dtype=torch.float32)


def sdxl_pooled_dim(unet: nn.Module) -> int:
    """P, the pooled embedding width a "text_time" UNet takes: its added-embedding input width
    minus the 6 time ids' Fourier features (6 x `addition_time_embed_dim`)."""
    config = unet.config
    return int(config.projection_class_embeddings_input_dim) - 6 * int(
        config.addition_time_embed_dim
    )


def force_zeros_flag(folder: Path) -> bool:
    """`force_zeros_for_empty_prompt` of a diffusers folder's model_index.json
    (`FORCE_ZEROS_FOR_EMPTY_PROMPT` when the file or the key is absent)."""
    index = Path(folder) / "model_index.json"
    flags = json.loads(index.read_text()) if index.is_file() else {}
    return bool(flags.get("force_zeros_for_empty_prompt", FORCE_ZEROS_FOR_EMPTY_PROMPT))


class SDXLModel(DiffusionModel):
    """A two-text-encoder SDXL model with pooled and size conditioning (module docstring).

    Args:
        unet: a diffusers `UNet2DConditionModel` with `addition_embed_type="text_time"`.
        text_encoder, tokenizer: the first CLIP text encoder (`CLIPTextModel`) and its tokenizer.
        text_encoder_2, tokenizer_2: the second, with projection (`CLIPTextModelWithProjection`).
        scheduler, vae, name, resolution: as `DiffusionModel`.
        force_zeros_for_empty_prompt: the condition of "" is all zeros (SDXL 1.0 base: true).
    """

    conditioning_kind = "sdxl"

    def __init__(
        self,
        unet: nn.Module,
        text_encoder: nn.Module,
        text_encoder_2: nn.Module,
        tokenizer,
        tokenizer_2,
        scheduler,
        vae: nn.Module | None,
        *,
        name: str,
        resolution: int | None = None,
        force_zeros_for_empty_prompt: bool = FORCE_ZEROS_FOR_EMPTY_PROMPT,
    ) -> None:
        super().__init__(
            unet, text_encoder, tokenizer, scheduler, vae, name=name, resolution=resolution
        )
        if getattr(unet.config, "addition_embed_type", None) != "text_time":
            raise UserInputError(
                f"base model {name!r}: an SDXL UNet has addition_embed_type='text_time', this one "
                f"has {getattr(unet.config, 'addition_embed_type', None)!r}"
            )
        self.text_encoder_2 = text_encoder_2
        self.tokenizer_2 = tokenizer_2
        self.force_zeros_for_empty_prompt = bool(force_zeros_for_empty_prompt)
        widths = int(text_encoder.config.hidden_size) + int(text_encoder_2.config.hidden_size)
        if widths != int(unet.config.cross_attention_dim):
            raise UserInputError(
                f"base model {name!r}: the text encoders give {widths}-wide token embeddings, the "
                f"UNet attends to {unet.config.cross_attention_dim}"
            )
        if int(text_encoder_2.config.projection_dim) != self.pooled_dim:
            raise UserInputError(
                f"base model {name!r}: text_encoder_2 pools to {text_encoder_2.config.projection_dim}, "
                f"the UNet takes a {self.pooled_dim}-wide pooled embedding"
            )

    # ----------------------------------------------------------------------------------- facts
    @property
    def pooled_dim(self) -> int:
        """P, the width of the pooled text embedding."""
        return sdxl_pooled_dim(self.unet)

    @property
    def tokenizers(self) -> tuple:
        """Both tokenizers: key j of cross-attention is token j of both encodings."""
        return (self.tokenizer, self.tokenizer_2)

    @property
    def max_prompt_tokens(self) -> int:
        return min(int(self.tokenizer.model_max_length), int(self.tokenizer_2.model_max_length))

    def time_ids(self, size: tuple[int, int]) -> Tensor:
        """The time ids [1, 6] of a working size (H, W) pixels (`size_time_ids`)."""
        return size_time_ids(size)

    def _identity_configs(self) -> dict:
        return {
            **super()._identity_configs(),
            "text_encoder_2": _config_fingerprint(self.text_encoder_2.config),
            "force_zeros_for_empty_prompt": self.force_zeros_for_empty_prompt,
        }

    def _fingerprint_tensors(self) -> list[Tensor]:
        embeddings = self.text_encoder_2.get_input_embeddings().weight
        return super()._fingerprint_tensors() + [embeddings[:16]]

    # ------------------------------------------------------------------------------------ text
    def tokenize(self, prompts: Sequence[str], what: str = "prompt") -> dict[str, Tensor]:
        """The first tokenizer's ids and mask [B, L] (word positions for attention maps); a
        prompt too long for either tokenizer is refused."""
        limit = self.max_prompt_tokens
        padded_token_ids(self.tokenizer_2, prompts, limit, what)
        return padded_token_ids(self.tokenizer, prompts, limit, what)

    @torch.no_grad()
    def encode_condition(self, prompts: str | Sequence[str], what: str = "prompt") -> Conditioning:
        """(c_tok [B, 77, D1 + D2], c_pool [B, P]) fp32 (module docstring); all zeros for an
        empty prompt when `force_zeros_for_empty_prompt`."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        limit = self.max_prompt_tokens
        hidden, pooled = [], None
        for tokenizer, encoder in (
            (self.tokenizer, self.text_encoder),
            (self.tokenizer_2, self.text_encoder_2),
        ):
            ids = padded_token_ids(tokenizer, prompts, limit, what)["input_ids"]
            out = encoder(ids.to(encoder.device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2].float())
            pooled = out[0].float()  # the second encoder's projected end-of-text embedding
        tokens = torch.cat(hidden, dim=-1)
        if self.force_zeros_for_empty_prompt:
            empty = torch.tensor([not p for p in prompts], device=tokens.device)
            if bool(empty.any()):
                tokens = torch.where(empty[:, None, None], torch.zeros_like(tokens), tokens)
                pooled = torch.where(empty[:, None], torch.zeros_like(pooled), pooled)
        return Conditioning(tokens, pooled)

    def encode_prompt(self, prompts: str | Sequence[str], what: str = "prompt") -> Tensor:
        """c_tok [B, 77, D1 + D2] alone (the pooled embedding: `encode_condition`)."""
        return self.encode_condition(prompts, what).tokens

    # ----------------------------------------------------------------------------------- UNet
    def unet_conditioning(self, emb: Tensor | Conditioning, x_t: Tensor) -> dict:
        """`encoder_hidden_states` = c_tok and `added_cond_kwargs` = {text_embeds: c_pool,
        time_ids: c_size} for samples x_t [B, C, h, w]; c_size from the samples' working size
        (h, w) x the VAE factor unless the condition carries time ids."""
        cond = as_conditioning(emb)
        if cond.pooled is None:
            raise UserInputError(
                f"base model {self.name!r} is SDXL: its UNet needs the pooled text embedding beside "
                f"the token embeddings, and this code path gives token embeddings only"
            )
        batch, dtype = x_t.shape[0], self.dtype
        time_ids = cond.time_ids
        if time_ids is None:
            f = self.vae_scale_factor
            time_ids = self.time_ids((x_t.shape[-2] * f, x_t.shape[-1] * f))
        time_ids = time_ids.to(x_t.device)
        if time_ids.shape[0] != batch:
            time_ids = time_ids.expand(batch, -1)
        return {
            "encoder_hidden_states": cond.tokens.to(dtype),
            "added_cond_kwargs": {
                "text_embeds": cond.pooled.to(dtype),
                "time_ids": time_ids.to(dtype),
            },
        }

    # ------------------------------------------------------------------------------- variants
    def with_unet(self, unet: nn.Module) -> SDXLModel:
        """A model sharing every component with this one except the UNet (as `DiffusionModel`)."""
        other = SDXLModel(
            unet,
            self.text_encoder,
            self.text_encoder_2,
            self.tokenizer,
            self.tokenizer_2,
            self.scheduler,
            self.vae,
            name=self.name,
            resolution=self.resolution,
            force_zeros_for_empty_prompt=self.force_zeros_for_empty_prompt,
        )
        other._identity = self.identity
        return other.to(self.device)
