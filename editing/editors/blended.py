"""Blended Diffusion (Avrahami et al., CVPR 2022): local CLIP-guided editing of a real image.

`python edit.py method=blended image=IMG mask=MASK target_prompt=T`, for pixel-space models.

From the noised input x_k ~ q(x_k | x0) (k: `num_timesteps - skip_timesteps` steps before the end
of a respaced DDPM chain, `editing.diffusion.ddpm`), every step t of Algorithm 2 (the paper's method) does

    1. eps = eps_theta(x_t, t); x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)
    2. L = CLIP guidance on x_in = x0_hat s + x_t (1 - s), s = sqrt(1 - a_t), masked, N augmented
       copies (+ range loss on x0_hat); g = dL/dx_t through the UNet   (`editing.editors.blended_guidance`)
    3. x_fg ~ N(mu~(x_t, x0_hat) - Sigma g, Sigma)                       (DDPM eq. 7, guided mean)
       with the model's learned Sigma where it predicts one (`variance=learned`), else beta~
    4. x_bg ~ q(x_{t-1} | x0), the source noised to the new level
    5. x_{t-1} = x_fg ⊙ m + x_bg ⊙ (1 - m)
and at the end the source is pasted outside the mask exactly. Algorithm 3 (`sampler=ddim`) replaces
step 3 by eps_hat = eps + sqrt(1 - a_t) g and a DDIM step; Algorithm 1 (`algorithm=local_clip`,
the paper's baseline) adds lambda_bg (MSE + LPIPS) / 2 outside the mask to L and skips 4-5 and
the paste. K candidates (batched) are ranked by the un-augmented CLIP distance of the masked
result, best first.

Defaults: paper (Algorithm 2, N = 16 augmentations, K = 64 candidates, the unconditional model)
and reference code (100 respaced steps, skip 25, lambda_clip 1000, lambda_range 50, the x_in mix).
A text-conditional model runs with the empty prompt unless `text_condition=true`. An empty
target prompt turns the guidance off (as the reference's `cond_fn` does) and the ranking too.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from editing.diffusion.ddim import add_noise, ddim_step, predict_x0
from editing.diffusion.ddpm import (
    DDPMSchedule,
    ddpm_sample,
    learned_range_variance,
    make_ddpm_schedule,
    model_variance,
    posterior_mean,
)
from editing.diffusion.denoise import denoise
from editing.diffusion.noise import randn_per_sample, seeded_generators
from editing.editors import settings
from editing.editors.blended_extrapolation import extrapolate, parse_extrapolate
from editing.editors.blended_guidance import (
    ExtendingAugmentations,
    background_loss,
    clip_loss,
    masked_clip_distance,
    range_loss,
    resize_for_clip,
)
from editing.editors.blended_presets import resolve_preset
from editing.editors.candidates import cached_clip, candidate_seeds, paste_outside, ranked_results
from editing.errors import UserInputError, require_text
from editing.io.edit_inputs import Inputs
from editing.io.masks import full_size_region, prepare_mask
from editing.io.outputs import EditResult

log = logging.getLogger(__name__)


# --- the sampler ------------------------------------------------------------------------------


class BlendedSampler:
    """Algorithms 1-3 for one batch of candidates, with everything constant hoisted out.

    Args:
        model: a pixel `DiffusionModel`. x0: [1, 3, R, R] source in [-1, 1]. mask: [1, 1, R, R].
        emb: [1, L, D] the UNet's text embedding ("" unless text-conditioned).
        schedule: the respaced chain. editor: the `BlendedEditor` whose settings apply.
        clip, text_emb ([1, D]): the CLIP guidance; clip None turns all guidance off (lambda = 0).
    """

    def __init__(self, model, x0, mask, emb, schedule: DDPMSchedule, editor, clip, text_emb):
        self.model, self.x0, self.mask, self.emb, self.schedule = model, x0, mask, emb, schedule
        self.clip, self.text_emb = clip, text_emb
        self.blend_background = editor.algorithm == "blended"
        self.ddim = editor.sampler == "ddim"
        self.clip_lambda = editor.clip_guidance_lambda if clip is not None else 0.0
        self.range_lambda = editor.range_lambda if clip is not None else 0.0
        self.bg_lambda = (
            editor.background_lambda if not self.blend_background and clip is not None else 0.0
        )
        # `variance=learned` uses the model's Sigma where it predicts one, else fixed small.
        self.learned = editor.variance == "learned" and bool(model.learned_variance)
        self.variance_kind = "small" if editor.variance == "learned" else editor.variance
        self.variance_used = (
            "ddim" if self.ddim else ("learned" if self.learned else self.variance_kind)
        )
        self.reference_level = editor.reference_background_level
        self.augment = ExtendingAugmentations(editor.num_augmentations)
        self.clip_mask = resize_for_clip(mask, clip.image_size) if clip is not None else None
        self.lpips = None
        if self.bg_lambda:
            from editing.models.lpips_weights import make_lpips

            self.lpips = make_lpips("vgg", x0.device)  # the reference's LPIPS backbone

    @property
    def guided(self) -> bool:
        return bool(self.clip_lambda or self.range_lambda or self.bg_lambda)

    def _eps(self, x_t: Tensor, t: Tensor, emb: Tensor) -> tuple[Tensor, Tensor | None]:
        """(eps, the model's variance output v or None) from one UNet call."""
        if self.learned:
            eps, v = self.model.eps_with_variance(x_t, t, emb)
            return eps, v.detach()
        return self.model.eps(x_t, t, emb), None

    def guidance(
        self, x_t: Tensor, i: int, generators
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """(eps, x0_hat, g = dL/dx_t or None, variance output v or None) at respaced step i; one
        UNet call for the batch."""
        t, a_t, _ = self.schedule.level(i)
        a_t = float(a_t)
        emb = self.emb.expand(x_t.shape[0], -1, -1)
        if not self.guided:
            with torch.no_grad():
                eps, v = self._eps(x_t, t, emb)
            return eps, predict_x0(x_t, eps, a_t), None, v
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            eps, v = self._eps(x, t, emb)
            x0_hat = predict_x0(x, eps, a_t)
            s = math.sqrt(1.0 - a_t)
            x_in = x0_hat * s + x * (1.0 - s)  # reference code: guide a mix of x0_hat and x_t
            loss = x.new_zeros(())
            if self.clip_lambda:
                d = clip_loss(
                    self.clip, x_in, self.clip_mask, self.text_emb, self.augment, generators
                )
                loss = loss + self.clip_lambda * d.sum()
            if self.range_lambda:
                loss = loss + self.range_lambda * range_loss(x0_hat).sum()
            if self.bg_lambda:
                d_bg = background_loss(x_in, self.x0, self.mask, self.lpips)
                loss = loss + self.bg_lambda * d_bg.sum()
            (grad,) = torch.autograd.grad(loss, x)
        return eps.detach(), x0_hat.detach(), grad, v

    def variance(self, i: int, v: Tensor | None) -> Tensor | float:
        """Sigma of respaced step i: the model's (`learned_range_variance` of its output v) for
        `variance=learned` on a learned-variance model, else fixed small / large (a float)."""
        _, a_t, a_prev = self.schedule.level(i)
        if v is None:
            return float(model_variance(float(a_t), float(a_prev), self.variance_kind))
        log_beta = torch.log(self.schedule.betas[i])
        return learned_range_variance(v, log_beta, self.schedule.log_posterior_variance_clipped(i))

    @torch.no_grad()
    def foreground(
        self,
        x_t: Tensor,
        i: int,
        prediction: tuple[Tensor, Tensor, Tensor | None, Tensor | None],
        noise_fg: Tensor | None,
    ) -> Tensor:
        """Step 3 at respaced step i: the guided DDPM posterior sample (Algorithm 2) or the guided
        DDIM step (Algorithm 3) from x_t, given (eps, x0_hat, g, v) of `guidance`."""
        _, a_t, a_prev = self.schedule.level(i)
        a_t, a_prev = float(a_t), float(a_prev)
        eps, x0_hat, grad, v = prediction
        if self.ddim:  # Algorithm 3: eps_hat = eps - sqrt(1 - a_t) grad log p, grad log p = -g
            eps_hat = eps if grad is None else eps + math.sqrt(1.0 - a_t) * grad
            return ddim_step(x_t, eps_hat, a_t, a_prev)
        # Algorithm 2: x_fg ~ N(mu + Sigma grad log p, Sigma)
        variance = self.variance(i, v)
        mean = posterior_mean(x0_hat, x_t, a_t, a_prev)
        if grad is not None:
            mean = mean - variance * grad
        return ddpm_sample(mean, variance, noise_fg, last=i == 0).to(x_t.dtype)

    @torch.no_grad()
    def blend(self, x_fg: Tensor, i: int, noise_bg: Tensor | None) -> Tensor:
        """Steps 4-5 at respaced step i: the source noised to the new level outside the mask
        (Algorithm 1 does not blend)."""
        if not self.blend_background:
            return x_fg
        _, a_t, a_prev = self.schedule.level(i)
        a_bg = float(a_t) if self.reference_level else float(a_prev)
        x_bg = add_noise(self.x0, noise_bg, a_bg)
        return torch.where(self.mask > 0.5, x_fg, x_bg)

    @torch.no_grad()
    def step(
        self, x_t: Tensor, i: int, generators, noise_fg: Tensor | None, noise_bg: Tensor | None
    ) -> Tensor:
        """x_{t-1} from x_t [B, 3, R, R] at respaced step i (Algorithm 1, 2 or 3), steps 1-5."""
        prediction = self.guidance(x_t, i, generators)
        return self.blend(self.foreground(x_t, i, prediction, noise_fg), i, noise_bg)

    @torch.no_grad()
    def sample(self, seeds: list[int], skip_timesteps: int, paste: bool) -> Tensor:
        """Final images [B, 3, R, R] in [-1, 1] for the candidates `seeds`."""
        device, shape = self.x0.device, tuple(self.x0.shape[1:])
        generators = seeded_generators(seeds)
        n = len(self.schedule)
        start = n - skip_timesteps - 1  # the respaced step sampling starts at
        respaced = lambda j: n - 1 - j  # noqa: E731 - sampling step j of the loop
        # 1. x_k ~ q(x_k | x0) (Algorithm 2, line 1).
        x = add_noise(
            self.x0, randn_per_sample(generators, shape, device), self.schedule.level(start)[1]
        )
        # 2. The guided, blended denoising steps k .. 0 in the shared loop; each step draws its
        #    foreground noise, then its background noise, then the augmentations.
        noise: dict[str, Tensor | None] = {}

        def before_step(j: int, t: Tensor) -> None:
            i = respaced(j)
            draw_fg = i and not self.ddim
            noise["fg"] = randn_per_sample(generators, shape, device) if draw_fg else None
            noise["bg"] = (
                randn_per_sample(generators, shape, device) if self.blend_background else None
            )

        x = denoise(
            x,
            self.schedule,
            lambda x_t, t, j: self.guidance(x_t, respaced(j), generators),
            update=lambda x_t, pred, j, a_t, a_prev: self.foreground(
                x_t, respaced(j), pred, noise["fg"]
            ),
            before_step=before_step,
            after_step=lambda x_fg, j: self.blend(x_fg, respaced(j), noise["bg"]),
            start=n - 1 - start,
        )
        # 3. Paste the source outside the mask (the reference's `enforce_background`).
        if paste and self.blend_background:
            x = paste_outside(x, self.x0, self.mask)
        return x.clamp(-1, 1)


# --- the editor --------------------------------------------------------------------------------


@dataclass(eq=False)
class BlendedEditor:
    """`python edit.py method=blended image=IMG mask=MASK target_prompt=T` (see module docstring).

    The fields are the settings of configs/method/blended.yaml (P = paper, R = reference code):
    `__post_init__` checks and normalises them; `clip(device)` loads the guidance CLIP once.
    """

    # Edits inside `mask=` (edit.py warns when a mask is given to a method without this).
    uses_mask: ClassVar[bool] = True

    # "blended" (Algorithms 2/3, P) or "local_clip" (Algorithm 1, the paper's baseline).
    algorithm: str = "blended"
    # "ddpm" (Algorithm 2, P) or "ddim" (Algorithm 3).
    sampler: str = "ddpm"
    # Respaced DDPM steps of the 1000 training steps (R).
    num_timesteps: int = 100
    # The paper's application presets: "none" | "scribble" | "background" (`blended_presets`).
    preset: str = "none"
    # Steps skipped at the noisy end; None: the preset's (none: 25 of 100, k = 75, R).
    skip_timesteps: int | None = None
    # DDPM Sigma: "learned" (the model's own, improved DDPM's interpolation between beta~ and
    # beta, for models that predict it, as R's ADM; fixed small otherwise) | "small" (posterior
    # beta~) | "large" (beta) (P, R: the model's learned Sigma).
    variance: str = "learned"
    # Weight of the CLIP loss (R).
    clip_guidance_lambda: float = 1000.0
    # Weight of the range loss keeping x0_hat in [-1, 1] (R).
    range_lambda: float = 50.0
    # Algorithm 1 only: (MSE + LPIPS) / 2 outside the mask (P ~1000).
    background_lambda: float = 1000.0
    # CLIP copies per step, the un-augmented one included (P 16; R 8).
    num_augmentations: int = 16
    # K candidates ranked by CLIP (P 64; R 8 x 4); candidate k uses seed + k.
    num_candidates: int = 64
    # Candidates per UNet/CLIP batch (project choice).
    batch_size: int = 4
    # Condition a text model on the target prompt too (P: "", the unconditional model).
    text_condition: bool = False
    # Edit outside the mask (background replacement); None: the preset's (project choice).
    invert_mask: bool | None = None
    # Grow the mask by N pixels (project choice).
    dilate: int = 0
    # edit_full.png: the edge of the pasted-back photo softened over N px at full resolution
    # (0: a hard edge; project choice).
    feather: int = 0
    # Paste the source outside the mask at the end (R `enforce_background`).
    enforce_background: bool = True
    # Blend with the source noised to t rather than t-1, as R's `postprocess_fn` (P: off).
    reference_background_level: bool = False
    # Progressive extrapolation "<right|left|up|down>:<shifts>" or "none" (P application).
    extrapolate: str = "none"
    # Its final pass: each new strip re-noised to this fraction of the chain (0: no final pass).
    extrapolate_final: float = 0.25
    # The CLIP: `clip.path` / `clip.name` of the top-level config (project choice).
    clip_path: str | None = None
    clip_name: str | None = None
    # The method's name in results and tables.
    name: str = "blended"

    def __post_init__(self) -> None:
        self.algorithm = settings.choice(self.algorithm, "algorithm", ("blended", "local_clip"))
        self.sampler = settings.choice(self.sampler, "sampler", ("ddpm", "ddim"))
        self.variance = settings.choice(self.variance, "variance", ("learned", "small", "large"))
        self.num_timesteps = settings.integer(self.num_timesteps, "num_timesteps", 1, 1000)
        self.preset, self.skip_timesteps, self.invert_mask = resolve_preset(
            self.preset, self.num_timesteps, self.skip_timesteps, self.invert_mask
        )
        for key in ("clip_guidance_lambda", "range_lambda", "background_lambda"):
            setattr(self, key, settings.number(getattr(self, key), key, 0))
        self.num_augmentations = settings.integer(self.num_augmentations, "num_augmentations", 1)
        self.num_candidates = settings.integer(self.num_candidates, "num_candidates", 1)
        self.batch_size = settings.integer(self.batch_size, "batch_size", 1)
        self.dilate = settings.integer(self.dilate, "dilate", 0)
        self.feather = settings.integer(self.feather, "feather", 0, 4096)
        for key in ("text_condition", "enforce_background"):
            setattr(self, key, settings.flag(getattr(self, key), key))
        self.reference_background_level = settings.flag(
            self.reference_background_level, "reference_background_level"
        )
        self.extrapolate = parse_extrapolate(self.extrapolate)
        self.extrapolate_final = settings.number(self.extrapolate_final, "extrapolate_final", 0, 1)
        self._clip = None

    def clip(self, device):
        """The guidance/ranking CLIP, loaded once (clear error when none is configured)."""
        return cached_clip(self, device)

    def full_size_region(self, inputs: Inputs) -> Tensor | None:
        """The edited region at the photo's size (`editing.io.full_size`)."""
        return full_size_region(inputs.full_mask, inputs.mask, self.invert_mask, self.dilate)

    def __call__(self, model, inputs: Inputs) -> list[EditResult]:
        if self.extrapolate != "none":  # the canvas grows strip by strip: one edit per strip
            return extrapolate(self, model, inputs)
        # 1. Checks: pixel model, image, mask, prompt, schedule length.
        if model.is_latent:
            raise UserInputError(
                f"method=blended is pixel-space Blended Diffusion but base model {model.name!r} is "
                f"a latent model: use method=blended_latent"
            )
        if inputs.image is None:
            raise UserInputError("method=blended needs image=PATH (the image to edit)")
        mask = prepare_mask(inputs.mask, self.invert_mask, self.dilate).to(model.device)
        prompt = require_text(
            inputs.target_prompt, "target_prompt", allow_empty=self.algorithm == "blended"
        )
        if self.num_timesteps > model.num_train_timesteps:
            raise UserInputError(
                f"method.num_timesteps={self.num_timesteps} exceeds the model's "
                f"{model.num_train_timesteps} training timesteps"
            )
        # 2. Constants of every step: source, embeddings, schedule, CLIP text embedding.
        device = model.device
        x0 = inputs.image.pixels.to(device)
        emb = model.encode_prompt([prompt if self.text_condition else ""]).to(device)
        schedule = make_ddpm_schedule(model.alphas_cumprod, self.num_timesteps)
        clip = text_emb = None
        if prompt.strip():
            clip = self.clip(device)
            with torch.no_grad():
                text_emb = clip.encode_text([prompt], "target_prompt")
        else:
            log.info("empty target_prompt: no CLIP guidance and no ranking (reference behaviour)")
        sampler = BlendedSampler(model, x0, mask, emb, schedule, self, clip, text_emb)
        # 3. Sample the K candidates in batches; score each by un-augmented CLIP distance.
        seeds = candidate_seeds(inputs.seed, self.num_candidates)
        images, scores = [], []
        for start in range(0, len(seeds), self.batch_size):
            chunk = seeds[start : start + self.batch_size]
            x = sampler.sample(chunk, self.skip_timesteps, self.enforce_background)
            if clip is not None:
                scores.append(masked_clip_distance(clip, x, mask, text_emb).cpu())
            images.append(x.cpu())
        # 4. Best first.
        params = {
            "method": self.name,
            "prompt": prompt,
            "preset": self.preset,
            "algorithm": self.algorithm,
            "sampler": self.sampler,
            "num_timesteps": self.num_timesteps,
            "skip_timesteps": self.skip_timesteps,
            "clip_guidance_lambda": self.clip_guidance_lambda,
            "variance": sampler.variance_used,
        }
        all_scores = torch.cat(scores) if scores else None
        return ranked_results(torch.cat(images), seeds, all_scores, params)
