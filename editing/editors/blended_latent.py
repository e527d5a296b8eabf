"""Blended Latent Diffusion (Avrahami, Fried & Lischinski, SIGGRAPH 2023) for latent models.

`python edit.py method=blended_latent base_model=sd15 image=IMG mask=MASK target_prompt=T`.

Blended Diffusion's blending moved to the latent space of Stable Diffusion, with text guidance
from the model itself (classifier-free guidance) instead of CLIP:

    0. z0 = E(x0); m_lat = the mask downsampled to the latent size
    1. z ~ q(z_k | z0): the *noised source latent* at `strength` (the reference script starts from
       pure noise, which drifts from the source; its issue #12)
    for every DDIM step t -> s (`editing.diffusion.ddim`):
    2. eps = eps_u + w (eps_c - eps_u) on the target prompt; z_fg = DDIM(z, eps, a_t, a_s)
    3. z_bg ~ q(z_s | z0), the source latent noised to the new level (the clean z0 after the last
       step)
    4. z = z_fg ⊙ m_lat + z_bg ⊙ (1 - m_lat)
    5. x = D(z); optionally x = x ⊙ m + x0 ⊙ (1 - m) (`pixel_paste`: the background is then the
       input pixels, not their VAE reconstruction)
Options: progressive mask shrinking for thin masks (paper Sec. 4.2: a dilated latent mask in the
early steps, shrinking to the true one) and CLIP ranking of the K candidates (paper; off by default
as in the public script).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from editing.diffusion.cfg import guided_eps
from editing.diffusion.conditioning import expand_condition
from editing.diffusion.ddim import DDIMSchedule, add_noise, make_schedule
from editing.diffusion.denoise import denoise
from editing.diffusion.noise import randn_per_sample, seeded_generators
from editing.editors import settings
from editing.editors.blended_guidance import masked_clip_distance
from editing.editors.candidates import cached_clip, candidate_seeds, paste_outside, ranked_results
from editing.errors import UserInputError, require_text
from editing.io.edit_inputs import Inputs
from editing.io.masks import downsample_mask, full_size_region, prepare_mask, shrinking_masks
from editing.io.outputs import EditResult

log = logging.getLogger(__name__)

REFERENCE_GUIDANCE = {"text": 7.5, "sdxl": 5.0}
"""The CFG weight of the public Blended Latent scripts by `model.conditioning_kind`: the Stable
Diffusion script's 7.5 and the SDXL script's 5.0 (which otherwise keeps 50 steps, skips the first
25% and blends with a nearest-neighbour latent mask, as the defaults here)."""


@dataclass(eq=False)
class BlendedLatentEditor:
    """Blended Latent Diffusion (see the module docstring).

    The fields are the settings of configs/method/blended_latent.yaml (R = the public SD
    script's default); `__post_init__` checks and normalises them.

    Attributes:
        callback: optional `callback(info: dict)` after every blended step, with keys step, t,
            a (level of the blended latent), z, z_bg, noise, mask (latent) (tests, previews).
    """

    # Edits inside `mask=` (edit.py warns when a mask is given to a method without this).
    uses_mask: ClassVar[bool] = True
    # Runs on SDXL: its conditions carry the pooled embedding (editing.editors.apply).
    supports_sdxl: ClassVar[bool] = True

    # DDIM steps of the full schedule (R 50).
    num_inference_steps: int = 50
    # Fraction of the schedule run from the noised source latent (R 0.75, i.e.
    # `blending_start_percentage` 0.25 skipped).
    strength: float = 0.75
    # Classifier-free guidance weight; None: the public script of the model family's (R 7.5 for
    # Stable Diffusion, 5.0 in the SDXL script: `REFERENCE_GUIDANCE`).
    guidance_scale: float | None = None
    # K samples (R: a batch of 4); candidate k uses seed + k.
    num_candidates: int = 4
    # Candidates per UNet batch (project choice).
    batch_size: int = 4
    # Paste the input pixels outside the mask after decoding: an exact background (project choice).
    pixel_paste: bool = True
    # "nearest" (R) or "max" (a latent cell is edited if any of its pixels is).
    mask_downsample: str = "nearest"
    # Progressive shrinking (paper Sec. 4.2): dilate the latent mask by this many cells at the
    # first step, shrinking to 0 by the `shrink_until` fraction of the steps (0 = off, R).
    shrink_radius: int = 0
    shrink_until: float = 0.5
    # Rank the candidates by CLIP distance of the masked result (paper; R: off).
    rank_with_clip: bool = False
    # As method=blended: edit outside the mask; grow the (pixel) mask by N pixels.
    invert_mask: bool = False
    dilate: int = 0
    # edit_full.png: the edge of the pasted-back photo softened over N px at full resolution
    # (0: a hard edge; project choice).
    feather: int = 0
    # The CLIP for ranking: `clip.path` / `clip.name` of the top-level config.
    clip_path: str | None = None
    clip_name: str | None = None
    # The method's name in results and tables.
    name: str = "blended_latent"

    def __post_init__(self) -> None:
        self.num_inference_steps = settings.integer(
            self.num_inference_steps, "num_inference_steps", 1, 1000
        )
        self.strength = settings.number(self.strength, "strength", 0.0, 1.0, open_low=True)
        if self.guidance_scale is not None:
            self.guidance_scale = settings.number(self.guidance_scale, "guidance_scale", 0.0)
        self.num_candidates = settings.integer(self.num_candidates, "num_candidates", 1)
        self.batch_size = settings.integer(self.batch_size, "batch_size", 1)
        self.pixel_paste = settings.flag(self.pixel_paste, "pixel_paste")
        self.mask_downsample = settings.choice(
            self.mask_downsample, "mask_downsample", ("nearest", "max")
        )
        self.shrink_radius = settings.integer(self.shrink_radius, "shrink_radius", 0)
        self.shrink_until = settings.number(self.shrink_until, "shrink_until", 0.0, 1.0)
        self.rank_with_clip = settings.flag(self.rank_with_clip, "rank_with_clip")
        self.invert_mask = settings.flag(self.invert_mask, "invert_mask")
        self.dilate = settings.integer(self.dilate, "dilate", 0)
        self.feather = settings.integer(self.feather, "feather", 0, 4096)
        self.callback = None
        self._clip = None

    def guidance_for(self, model) -> float:
        """The CFG weight w run on `model`: `guidance_scale`, else its family's reference value."""
        if self.guidance_scale is not None:
            return self.guidance_scale
        return REFERENCE_GUIDANCE[getattr(model, "conditioning_kind", "text")]

    def start_step(self) -> int:
        """Index of the first DDIM step run: round-down of N (1 - strength), as the script's
        `timesteps[int(N * blending_start_percentage):]`."""
        return min(
            int(self.num_inference_steps * (1.0 - self.strength) + 1e-9),
            self.num_inference_steps - 1,
        )

    @torch.no_grad()
    def sample(
        self, model, schedule: DDIMSchedule, z0: Tensor, masks: list[Tensor], cond, uncond, seeds
    ) -> Tensor:
        """Blended latents [B, C, h, w] for the candidates `seeds` (steps 1-4).

        z0: [1, C, h, w] source latent; masks: one [1, 1, h, w] latent mask per step run;
        cond, uncond: [1, L, D] text embeddings of the target prompt and of "" (or
            `Conditioning`s with the pooled embedding, on SDXL).
        """
        device, shape = z0.device, tuple(z0.shape[1:])
        generators = seeded_generators(seeds)
        start, last = self.start_step(), self.num_inference_steps - 1
        w = self.guidance_for(model)
        cond = expand_condition(cond, len(seeds))
        # 1. The noised source latent at the first step's level.
        z = add_noise(z0, randn_per_sample(generators, shape, device), schedule.alphas[start])

        def blend(z_fg: Tensor, i: int) -> Tensor:
            # 3. The source at the new level (clean after the last step).
            level = 1.0 if i == last else float(schedule.alphas_prev[i])
            noise = randn_per_sample(generators, shape, device) if i < last else None
            z_bg = z0.expand_as(z_fg) if noise is None else add_noise(z0, noise, level)
            # 4. Blend with the (possibly shrinking) latent mask.
            m = masks[i - start]
            z = torch.where(m > 0.5, z_fg, z_bg)
            if self.callback is not None:
                t = schedule.timesteps[i]
                info = {"step": i, "t": t, "a": level, "z": z, "z_bg": z_bg, "noise": noise}
                self.callback({**info, "mask": m})
            return z

        # 2. Guided DDIM steps on the target prompt (the shared loop), each blended (3-4).
        return denoise(
            z,
            schedule,
            lambda z_t, t, i: guided_eps(model, z_t, t, cond, uncond, w),
            after_step=blend,
            start=start,
        )

    def full_size_region(self, inputs: Inputs) -> Tensor | None:
        """The edited region at the photo's size (`editing.io.full_size`)."""
        return full_size_region(inputs.full_mask, inputs.mask, self.invert_mask, self.dilate)

    def __call__(self, model, inputs: Inputs) -> list[EditResult]:
        # 1. Checks: latent model, image, mask, prompt.
        if not model.is_latent:
            raise UserInputError(
                f"method=blended_latent needs a latent model (with a VAE) but base model "
                f"{model.name!r} works in pixel space: use method=blended"
            )
        if inputs.image is None:
            raise UserInputError("method=blended_latent needs image=PATH (the image to edit)")
        device = model.device
        mask = prepare_mask(inputs.mask, self.invert_mask, self.dilate).to(device)
        prompt = require_text(inputs.target_prompt, "target_prompt", allow_empty=True)
        clip = text_emb = None
        if self.rank_with_clip and prompt.strip():
            clip = cached_clip(self, device)
            text_emb = clip.encode_text([prompt], "target_prompt")
        elif self.rank_with_clip:
            log.info("empty target_prompt: candidates are not ranked")
        # 2. Constants: source latent, latent mask(s), text embeddings.
        with torch.no_grad():
            x0 = inputs.image.pixels.to(device)
            z0 = model.encode_image(x0)
            cond, uncond = model.encode_condition([prompt]), model.encode_condition([""])
        m_lat = downsample_mask(mask, tuple(z0.shape[-2:]), self.mask_downsample)
        if not bool(m_lat.any()):
            raise UserInputError(
                f"the mask vanishes at the latent resolution {tuple(z0.shape[-2:])}: enlarge it "
                f"(method.dilate=N) or use method.mask_downsample=max"
            )
        schedule = make_schedule(model.scheduler, self.num_inference_steps).to(device)
        n_steps = self.num_inference_steps - self.start_step()
        if self.shrink_radius:
            masks = shrinking_masks(m_lat, n_steps, self.shrink_radius, self.shrink_until)
        else:
            masks = [m_lat] * n_steps
        # 3. Candidates in batches: blended sampling, decoding, pixel paste, CLIP score.
        seeds = candidate_seeds(inputs.seed, self.num_candidates)
        images, scores = [], []
        for start in range(0, len(seeds), self.batch_size):
            chunk = seeds[start : start + self.batch_size]
            z = self.sample(model, schedule, z0, masks, cond, uncond, chunk)
            with torch.no_grad():
                x = model.decode(z).clamp(-1, 1)
                if self.pixel_paste:
                    x = paste_outside(x, x0, mask)
                if clip is not None:
                    scores.append(masked_clip_distance(clip, x, mask, text_emb).cpu())
            images.append(x.cpu())
        # 4. Best first (seed order without ranking).
        params = {
            "method": self.name,
            "prompt": prompt,
            "num_inference_steps": self.num_inference_steps,
            "strength": self.strength,
            "guidance_scale": self.guidance_for(model),
        }
        all_scores = torch.cat(scores) if scores else None
        return ranked_results(torch.cat(images), seeds, all_scores, params)
