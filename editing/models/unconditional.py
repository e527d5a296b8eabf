"""Unconditional pixel diffusion models (no text encoder), e.g. guided-diffusion's 256 px ImageNet
model that Blended Diffusion edits with: `base_model=adm256`.

`UnconditionalDiffusionModel` is a `DiffusionModel` around a diffusers `UNet2DModel` (called as
`unet(x_t, t)`, no text), with learned variance when the UNet has 2C output channels. Its only
"prompt" is the empty one: `encode_prompt([""] * B)` is the empty embedding [B, 0, 0], which the
UNet ignores, so an editor that runs on the empty prompt (pixel Blended Diffusion with
`method.text_condition=false`, guided by CLIP alone, as in the paper) runs unchanged; any other
prompt is one `UserInputError` (`editing.editors.apply.check_conditioning` refuses the methods that
need text before they start).

`load_adm_model` is the `base_model=adm256` loader: a guided-diffusion `.pt` file and its flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from editing.errors import UserInputError
from editing.models.diffusion_model import DiffusionModel


class UnconditionalDiffusionModel(DiffusionModel):
    """A pixel `DiffusionModel` whose UNet takes no text (see the module docstring).

    Args:
        unet: a diffusers `UNet2DModel` (in_channels C, out_channels C, or 2C with learned variance).
        scheduler: a DDIM-compatible scheduler with the training betas.
        name: the identity recorded in artifacts and outputs; resolution: default the UNet's size.
    """

    text_conditioned = False

    def __init__(
        self, unet: nn.Module, scheduler, *, name: str, resolution: int | None = None
    ) -> None:
        super().__init__(unet, None, None, scheduler, None, name=name, resolution=resolution)

    def _refuse(self, what: str) -> UserInputError:
        return UserInputError(
            f"base model {self.name!r} is unconditional (it has no text encoder), so the {what} "
            f"cannot condition it: on it only method=blended with method.text_condition=false "
            f"runs (guided by CLIP)"
        )

    @property
    def max_prompt_tokens(self) -> int:
        return 0

    def tokenize(self, prompts: Sequence[str], what: str = "prompt") -> dict[str, Tensor]:
        raise self._refuse(what)

    @torch.no_grad()
    def encode_prompt(self, prompts: str | Sequence[str], what: str = "prompt") -> Tensor:
        """The empty embedding [B, 0, 0] for B empty prompts; a non-empty prompt is refused."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if any(p.strip() for p in prompts):
            raise self._refuse(what)
        return torch.zeros(len(prompts), 0, 0, device=self.device)

    def _unet_output(self, x_t: Tensor, t: Tensor, emb: Tensor, **unet_kwargs) -> Tensor:
        """`unet(x_t, t)` [B, C or 2C, h, w]; `emb` (the empty embedding) is not used."""
        if unet_kwargs:
            raise UserInputError(
                f"base model {self.name!r} (an unconditional UNet) takes no "
                f"{', '.join(sorted(unet_kwargs))}"
            )
        return self.unet(x_t.to(self.dtype), t, return_dict=False)[0]

    def with_unet(self, unet: nn.Module) -> UnconditionalDiffusionModel:
        """The same model with another UNet (the base object is never mutated)."""
        other = UnconditionalDiffusionModel(
            unet, self.scheduler, name=self.name, resolution=self.resolution
        )
        other._identity = self.identity
        return other.to(self.device)


def load_adm_model(
    path: str | None,
    name: str = "adm256",
    resolution: int | None = None,
    dtype: str = "float32",
    **flags: Any,
) -> UnconditionalDiffusionModel:
    """`base_model=adm256`: a guided-diffusion (ADM) `.pt` file converted into a frozen
    `UnconditionalDiffusionModel` (`editing.models.adm_checkpoint`), with the flags it was trained
    with (`editing.models.adm_flags.ADMFlags`; defaults: 256x256_diffusion_uncond.pt) and their
    noise schedule (1000 linear steps for that model)."""
    from diffusers import DDIMScheduler

    from editing.models.adm_checkpoint import build_adm_unet, load_adm_state_dict
    from editing.models.adm_flags import ADMFlags
    from editing.models.loading import weights_dtype

    if not path:
        raise UserInputError(
            "base_model.path is empty: give the guided-diffusion checkpoint, e.g. "
            "base_model.path=/path/to/256x256_diffusion_uncond.pt (download it from the "
            "openai/guided-diffusion release yourself)"
        )
    known = set(ADMFlags.__dataclass_fields__)
    unknown = sorted(set(flags) - known)
    if unknown:
        raise UserInputError(
            f"base_model.{unknown[0]} is not a guided-diffusion flag (known: {', '.join(sorted(known))})"
        )
    adm = ADMFlags(**flags)
    if adm.class_cond:
        raise UserInputError(
            "base_model.class_cond=true: a class-conditional ADM needs a class label at every step, "
            "which no editing method here gives; use the unconditional model"
        )
    torch_dtype = weights_dtype(dtype)
    unet = build_adm_unet(load_adm_state_dict(path), adm, torch_dtype)
    scheduler = DDIMScheduler.from_config(adm.scheduler_config())
    return UnconditionalDiffusionModel(unet, scheduler, name=name, resolution=resolution).freeze()
