"""Direct Inversion (Elarabawy, Kamath & Denton 2022): edit by injecting the inversion's noise.

Not PnP inversion (Ju et al. 2023, also once called "Direct Inversion"), which rewrites the
latents themselves; this is the noise-merge method of Elarabawy et al.

1. DDIM-invert z0 = E(x) (VAE posterior mean) conditioned on the inversion prompt ("" by default)
   without guidance, recording eps_inv at every inversion step; the end point is x_T
   (`editing.inversion.cache`; cached as `checkpoint_dir/direct_inversion.safetensors`).
2. Run the reverse process from x_T (or from fresh seeded noise) with classifier-free guidance on
   the target text. At sampling step i, while i < stop_step and i % inject_every == 0, merge the
   recorded noise of the matching timestep ("noise merge lambda", the paper's Sec. 3):
       linear:              eps = (1 - lambda) eps_cfg + lambda eps_inv[i]
       variance_preserving: eps = (lambda eps_inv[i] + (1 - lambda) eps_cfg)
                                  / sqrt(lambda^2 + (1 - lambda)^2)   (reference code, commented out)
   then a deterministic DDIM step (`editing.diffusion.ddim.ddim_step`).

With `inject=latent` (the public pipeline's merge, the paper's wording "merging the UNet output
with the inverted latent") the merged term is the inverted latent x_T itself instead of the
recorded noise: eps = eps_cfg + lambda (x_T - eps_cfg) (linear; variance_preserving likewise).

With inject=eps, lambda = 1 at every step replays the inversion backwards and reconstructs z0
(exact inverse of DDIM with the same eps); lambda = 0 is plain guided DDIM sampling from x_T. Defaults are the
reference notebook's: guidance 3, lambda 0.5, 100 inversion + 100 inference steps, injection at
every step. Two fixes to the reference: inversion and sampling use the same timestep labels (the
reference's were offset by one; see `editing.diffusion.ddim.DDIMSchedule`), and the image is encoded with
the VAE's posterior mean instead of an unseeded posterior sample.

Step counts that differ: sampling step i uses the recorded eps of the inversion timestep nearest
to its own (ties go to the noisier one), and the reverse process starts at the level x_T actually
has (the inversion's first timestep): sampling timesteps at or above it are replaced by it, so with
more inference than inversion steps the unreachable top steps are skipped (logged). With equal
counts the two schedules are identical.

On a pixel cascade the edit runs on the base stage and every result is then super-resolved with the
target text by the pretrained SR stage (`editing.editors.apply.apply_editor`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from editing.diffusion.cfg import guided_eps
from editing.diffusion.conditioning import Conditioning, expand_condition
from editing.diffusion.ddim import DDIMSchedule, make_schedule
from editing.diffusion.denoise import denoise
from editing.diffusion.noise import initial_noise
from editing.editors import settings
from editing.errors import UserInputError, require_text
from editing.inversion.cache import load_or_invert
from editing.io.edit_inputs import Inputs
from editing.io.outputs import EditResult

log = logging.getLogger(__name__)

MERGES = ("linear", "variance_preserving")
STARTS = ("inverted", "noise")
INJECTS = ("eps", "latent")
STAGE = "direct_inversion"


def merge_noise(
    eps_cfg: Tensor, eps_inv: Tensor, lam: Tensor | float, merge: str = "linear"
) -> Tensor:
    """The noise merge of Direct Inversion. eps_cfg [B, C, h, w], eps_inv [1 or B, C, h, w],
    lam a float or [B, 1, 1, 1]; returns [B, C, h, w].

    linear: (1 - lam) eps_cfg + lam eps_inv. variance_preserving: the same sum divided by
    sqrt(lam^2 + (1 - lam)^2), which keeps unit variance for independent unit-variance inputs.
    """
    mixed = (1 - lam) * eps_cfg + lam * eps_inv
    if merge == "linear":
        return mixed
    if merge == "variance_preserving":
        lam = torch.as_tensor(lam, dtype=mixed.dtype, device=mixed.device)
        return mixed / (lam**2 + (1 - lam) ** 2).sqrt()
    raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")


def injection_steps(num_steps: int, stop_step: int | None, inject_every: int) -> list[bool]:
    """inject[i] for sampling steps i = 0 .. num_steps-1: i < stop_step and i % inject_every == 0.

    stop_step None injects until the end; 0 never injects (plain guided sampling).
    """
    stop = num_steps if stop_step is None else stop_step
    return [i < stop and i % inject_every == 0 for i in range(num_steps)]


def sampling_schedule(scheduler, num_inference_steps: int, t_T: int) -> DDIMSchedule:
    """The DDIM schedule of the reverse process, started at x_T's timestep t_T.

    Timesteps [t_T] + [u_k for k >= 1 if u_k < t_T], where u_0 > ... > u_{M-1} are the scheduler's
    own `num_inference_steps` timesteps: the first step always starts from x_T's level. With as
    many inversion as inference steps this is the scheduler's schedule unchanged; with fewer
    inference steps only u_0 is relabelled t_T (the first stride is longer); with more, the steps
    at or above x_T's level cannot be run and are dropped (the schedule has fewer than M steps).
    """
    base = make_schedule(scheduler, num_inference_steps)
    alphas_cumprod = scheduler.alphas_cumprod.to(torch.float32)
    rest = base.timesteps[1:]
    below = rest[rest < t_T]
    timesteps = torch.cat([torch.tensor([t_T], dtype=torch.int64), below])
    alphas = alphas_cumprod[timesteps]
    alphas_prev = torch.cat([alphas[1:], base.alphas_prev[-1:]])
    return DDIMSchedule(timesteps=timesteps, alphas=alphas, alphas_prev=alphas_prev)


def nearest_inversion_index(sampling_timesteps: Tensor, inversion_timesteps: Tensor) -> Tensor:
    """index[i] = argmin_j |inversion_timesteps[j] - sampling_timesteps[i]| ([M] int64; ties go
    to the smaller j, the noisier timestep). The identity when the two schedules are equal."""
    distance = (sampling_timesteps[:, None] - inversion_timesteps[None, :]).abs()
    return distance.argmin(dim=1)


@torch.no_grad()
def direct_inversion_sample(
    model,
    x_T: Tensor,
    eps_inv: Tensor,
    schedule: DDIMSchedule,
    cond: Tensor | Conditioning,
    uncond: Tensor | Conditioning,
    lambdas: list[float],
    guidance_scales: list[float],
    inject: list[bool],
    merge: str = "linear",
    progress: bool = False,
) -> Tensor:
    """The reverse process of Direct Inversion for B samples at once.

    Args:
        model: a `DiffusionModel` (any prediction type: `model.eps` normalises to eps).
        x_T: [B, C, h, w] starting samples (the inverted x_T repeated, or fresh noise).
        eps_inv: [M, 1, C, h, w] the recorded noise for each sampling step (already matched).
        schedule: the M-step sampling schedule.
        cond: [1 or B, L, D] target text embedding(s); uncond: [1, L, D] the embedding of ""
            (or `Conditioning`s with the pooled embedding, on SDXL).
        lambdas, guidance_scales: per-sample noise-merge lambda and CFG weight w (length B).
        inject: [M] whether step i merges eps_inv (`injection_steps`).
    Returns:
        [B, C, h, w] the final samples z_0 (latents for latent models).
    """
    batch, device = x_T.shape[0], x_T.device
    lam = torch.tensor(lambdas, dtype=torch.float32, device=device).view(batch, 1, 1, 1)
    w = torch.tensor(guidance_scales, dtype=torch.float32, device=device).view(batch, 1, 1, 1)
    cond = expand_condition(cond.to(device), batch)
    uncond = expand_condition(uncond.to(device), batch)
    needs_cfg = lam.view(batch) < 1  # rows whose merged eps depends on eps_cfg

    def eps_fn(x: Tensor, t: Tensor, i: int) -> Tensor:
        if not inject[i]:
            # 1a. No injection: the guided prediction eps_cfg alone.
            return guided_eps(model, x, t, cond, uncond, w)
        if bool(needs_cfg.all()):
            # 1b. Noise merge (paper Sec. 3): eps = (1 - lambda) eps_cfg + lambda eps_inv[i].
            return merge_noise(guided_eps(model, x, t, cond, uncond, w), eps_inv[i], lam, merge)
        # 1c. The same merge, where lambda = 1 rows take eps_inv[i] alone (no UNet call is spent
        #     on them; the merge formula gives exactly eps_inv[i] there).
        eps = eps_inv[i].expand_as(x).clone()
        if bool(needs_cfg.any()):
            r = needs_cfg
            eps_cfg = guided_eps(model, x[r], t, cond[r], uncond[r], w[r])
            eps[r] = merge_noise(eps_cfg, eps_inv[i], lam[r], merge)
        return eps

    # 2. Deterministic DDIM steps x_t -> x_{t-1} (DDIM eq. 12, sigma = 0) in the shared loop.
    desc = "Direct Inversion sampling" if progress else None
    return denoise(x_T, schedule.to(device), eps_fn, desc=desc)


@dataclass(eq=False)
class DirectInversionEditor:
    """`python edit.py method=direct_inversion image=IMG target_prompt=T [method.noise_lambda=[..]]`.

    The fields are the settings of configs/method/direct_inversion.yaml (defaults: the reference
    notebook); `__post_init__` checks them and sets the normalised `lambdas` and
    `guidance_scales` (lists). Every (lambda, w[, seed]) combination shares one inversion;
    results are lambda-major.
    """

    # On a cascade, results are super-resolved afterwards (editing.editors.apply); not a setting.
    cascade_super_resolution: ClassVar[bool] = True
    # Runs on SDXL: its conditions carry the pooled embedding (editing.editors.apply).
    supports_sdxl: ClassVar[bool] = True

    # One value or a list in [0, 1] (reference 0.5). 1 reconstructs the input, 0 ignores it;
    # values outside [0, 1] are refused (extrapolation is not in the paper).
    noise_lambda: float | Sequence[float] = 0.5
    # CFG weight w on the target text, one value or a list (reference 3).
    guidance_scale: float | Sequence[float] = 3.0
    # DDIM inversion / sampling steps (reference 100 / 100).
    num_inversion_steps: int = 100
    num_inference_steps: int = 100
    # Inject only in sampling steps i < k (None: all; 0: never, plain CFG sampling) (paper).
    stop_step: int | None = None
    # Inject every k-th step (the paper's injection frequency; reference 1).
    inject_every: int = 1
    # "linear" (reference) or "variance_preserving" (reference, commented out).
    merge: str = "linear"
    # What is merged into the UNet output: "eps" (the recorded inversion noise of the matching
    # timestep, the noise-trajectory merge) | "latent" (the inverted latent x_T, the public
    # pipeline's `eps + lambda (x_T_inv - eps)`) (project choice of default: eps).
    inject: str = "eps"
    # "inverted" (x_T, the method) or "noise" (fresh seeded noise; the recorded eps still
    # steers the trajectory) (project choice).
    start: str = "inverted"
    # With start=noise: one seed or a list (None: the top-level seed) (project choice).
    seeds: int | Sequence[int] | None = None
    # The inversion's condition (reference "").
    inversion_prompt: str = ""
    # Condition the inversion on `source_prompt` instead (a common variant: on models with a
    # weak unconditional branch, e.g. the demo model, the empty-prompt inversion loses the
    # layout and the edit moves the object) (project choice).
    invert_with_source: bool = False
    # Samples per UNet batch, each one CFG uncond/cond pair (project choice).
    batch_size: int = 8
    # The method's name in results and tables.
    name: str = STAGE

    def __post_init__(self) -> None:
        self.lambdas = settings.numbers(self.noise_lambda, "noise_lambda", 0.0, 1.0)
        self.guidance_scales = settings.numbers(self.guidance_scale, "guidance_scale", 0.0)
        self.num_inversion_steps = settings.integer(
            self.num_inversion_steps, "num_inversion_steps", 1, 1000
        )
        self.num_inference_steps = settings.integer(
            self.num_inference_steps, "num_inference_steps", 1, 1000
        )
        self.stop_step = settings.optional_integer(
            self.stop_step, "stop_step", 0, self.num_inference_steps
        )
        self.inject_every = settings.integer(self.inject_every, "inject_every", 1)
        self.merge = settings.choice(self.merge, "merge", MERGES)
        self.inject = settings.choice(self.inject, "inject", INJECTS)
        self.start = settings.choice(self.start, "start", STARTS)
        if self.seeds is not None:
            self.seeds = settings.integers(self.seeds, "seeds")
        if self.seeds is not None and self.start != "noise":
            raise UserInputError(
                "method.seeds only applies to method.start=noise (the inverted x_T has no seed); "
                "drop method.seeds or add method.start=noise"
            )
        self.inversion_prompt = settings.text(self.inversion_prompt, "inversion_prompt", True)
        self.invert_with_source = settings.flag(self.invert_with_source, "invert_with_source")
        if self.invert_with_source and self.inversion_prompt:
            raise UserInputError(
                "method.invert_with_source=true conditions the inversion on source_prompt; "
                "drop method.inversion_prompt (or set invert_with_source=false)"
            )
        self.batch_size = settings.integer(self.batch_size, "batch_size", 1)

    def _params(self, target: str, lam: float, w: float, seed: int | None) -> dict:
        params = {
            "method": self.name,
            "prompt": target,
            "noise_lambda": lam,
            "guidance_scale": w,
            # with invert_with_source the prompt is each case's caption: the switch is recorded,
            # so that results group by setting rather than by caption
            "inversion_prompt": self.inversion_prompt,
            "invert_with_source": self.invert_with_source,
            "num_inversion_steps": self.num_inversion_steps,
            "num_inference_steps": self.num_inference_steps,
            "stop_step": self.stop_step,
            "inject_every": self.inject_every,
            "merge": self.merge,
            "start": self.start,
        }
        if self.inject != "eps":  # recorded only when set, so eps-merge results are unchanged
            params["inject"] = self.inject
        return params if seed is None else {**params, "seed": seed}

    def __call__(self, model, inputs: Inputs) -> list[EditResult]:
        if inputs.image is None:
            raise UserInputError("method=direct_inversion needs image=PATH (the image to edit)")
        target = require_text(inputs.target_prompt, "target_prompt")
        inversion_prompt = self.inversion_prompt
        if inputs.source_prompt and not self.invert_with_source:
            log.warning(
                "source_prompt has no effect on Direct Inversion unless method.invert_with_source=true "
                "(the inversion is conditioned on method.inversion_prompt=%r)",
                self.inversion_prompt,
            )
        if self.invert_with_source:
            inversion_prompt = require_text(inputs.source_prompt, "source_prompt")
        device = model.device

        # 1. DDIM inversion of z0 with eps_inv recorded (reused from checkpoint_dir if cached).
        record = load_or_invert(
            model,
            inputs.image,
            inversion_prompt,
            self.num_inversion_steps,
            inputs.checkpoint_dir,
            STAGE,
            progress=True,
        ).to(device)

        # 2. Sampling schedule from x_T's level; eps_inv matched to it; the injection steps.
        schedule = sampling_schedule(
            model.scheduler, self.num_inference_steps, int(record.timesteps[0])
        )
        if len(schedule) < self.num_inference_steps:
            log.warning(
                "x_T was inverted to t=%d: %d of the %d inference steps lie above it and are "
                "skipped; use method.num_inversion_steps >= method.num_inference_steps to run them",
                int(record.timesteps[0]),
                self.num_inference_steps - len(schedule),
                self.num_inference_steps,
            )
        index = nearest_inversion_index(schedule.timesteps, record.timesteps.cpu())
        if self.inject == "eps":
            eps_inv = record.eps[index.to(device)]
        else:  # the inverted latent x_T at every injected step: [M, 1, C, h, w]
            eps_inv = record.x_T[None].expand(len(schedule), *record.x_T.shape)
        inject = injection_steps(len(schedule), self.stop_step, self.inject_every)

        # 3. Text embeddings, once for every sample.
        cond = model.encode_condition([target], "target_prompt")
        uncond = model.encode_condition([""])

        # 4. Every (lambda, w, seed) combination from the one inversion, batch_size at a time.
        seeds = (self.seeds or [inputs.seed]) if self.start == "noise" else [None]
        combos = list(itertools.product(self.lambdas, self.guidance_scales, seeds))
        results: list[EditResult] = []
        for begin in range(0, len(combos), self.batch_size):
            chunk = combos[begin : begin + self.batch_size]
            if self.start == "noise":
                x_T = initial_noise([seed for *_, seed in chunk], record.x_T.shape[1:], device)
            else:
                x_T = record.x_T.expand(len(chunk), *record.x_T.shape[1:])
            z0 = direct_inversion_sample(
                model,
                x_T,
                eps_inv,
                schedule,
                cond,
                uncond,
                [lam for lam, _, _ in chunk],
                [w for _, w, _ in chunk],
                inject,
                self.merge,
                progress=True,
            )
            # 5. Decode to pixels and label each result.
            images = model.decode(z0).clamp(-1, 1).cpu()
            for (lam, w, seed), image in zip(chunk, images):
                label = f"lambda={lam:g} w={w:g}" + ("" if seed is None else f" seed={seed}")
                results.append(EditResult(image, label, self._params(target, lam, w, seed)))
        return results
