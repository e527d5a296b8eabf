"""Imagic editing (Kawar et al., CVPR 2023, Sec. 3 step C): interpolate and sample.

Given the artifacts of the two training stages (the optimised embedding e_opt, the target
embedding e_tgt and the fine-tuned UNet), the edit is a plain guided DDIM sample of the fine-tuned
model conditioned on

    e_bar = eta * e_tgt + (1 - eta) * e_opt,

for each requested eta (eta = 0 reconstructs the input, eta = 1 is the target text alone, eta > 1
extrapolates as the public ports allow) and each seed. Results vary with the seed; the paper shows
several and lets the user pick.

On SDXL the text condition is a pair (token embeddings [1, 77, D1 + D2], pooled embedding [1, P]):
e_tgt and e_opt are both pairs, optimised and interpolated together, field by field
(`interpolate`); the size time ids are not optimised, they follow the working size at every UNet
call (`editing.models.sdxl.SDXLModel.unet_conditioning`). The artifacts store the pooled parts
beside the token embeddings as `e_tgt_pooled` / `e_opt_pooled` (`embedding_tensors`,
`artifact_embeddings`); SD-type models keep plain [1, L, D] tensors throughout.

On a pixel cascade (`model.sr`, e.g. DeepFloyd IF) the base sample is then super-resolved with
e_tgt, not e_bar (the paper, on Imagen), by the SR stage fine-tuned on the input
(`imagic_sr_finetune` artifact; `method.sr=finetuned`, the default there), the pretrained one
(`pretrained`), or not at all (`none`: the base output upsampled bicubically to the SR resolution).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from editing.diffusion.conditioning import (
    POOLED_SUFFIX,
    Conditioning,
    cat_conditions,
    embedding,
    text_embedding,
)
from editing.diffusion.noise import initial_noise
from editing.diffusion.sampling import sample
from editing.editors import settings
from editing.errors import UserInputError
from editing.io.artifacts import (
    Artifact,
    check_weights,
    image_metadata,
    load_artifact,
    model_metadata,
    working_size,
)
from editing.io.edit_inputs import Inputs
from editing.io.outputs import EditResult
from editing.models.cascade import (
    SR_CHOICES,
    require_sr,
    sr_metadata,
    sr_size,
    super_resolve,
    upscale_output,
)
from editing.models.diffusion_model import DiffusionModel
from editing.models.unet_weights import finetuned_unet, has_unet_weights

log = logging.getLogger(__name__)

ETA_MAX = 2.0
"""The largest interpolation weight accepted: eta > 1 extrapolates past e_tgt (the public ports go
to 1.2); far beyond, e_bar leaves the region of embeddings the text encoder produces."""

Embedding = Tensor | Conditioning
"""Imagic's text embedding: token embeddings [1, L, D], or on SDXL a `Conditioning` of tokens
[1, L, D] and pooled [1, P] (no time ids: they follow the working size)."""


def interpolate(e_tgt: Embedding, e_opt: Embedding, eta: float) -> Embedding:
    """e_bar = eta * e_tgt + (1 - eta) * e_opt (Imagic Sec. 3, step C), over every field:
    tokens [1, L, D] and, on SDXL, pooled [1, P]."""
    if isinstance(e_tgt, Conditioning):
        tokens = interpolate(e_tgt.tokens, e_opt.tokens, eta)
        pooled = None if e_tgt.pooled is None else interpolate(e_tgt.pooled, e_opt.pooled, eta)
        return Conditioning(tokens, pooled)
    return eta * e_tgt + (1.0 - eta) * e_opt


def embedding_tensors(name: str, emb: Embedding) -> dict[str, Tensor]:
    """Artifact tensors of an embedding, fp32: {name: tokens} plus {name_pooled: pooled} on SDXL."""
    if not isinstance(emb, Conditioning):
        return {name: emb.detach().float()}
    tensors = {name: emb.tokens.detach().float()}
    if emb.pooled is not None:
        tensors[name + POOLED_SUFFIX] = emb.pooled.detach().float()
    return tensors


def artifact_embeddings(artifact: Artifact, model: DiffusionModel) -> tuple[Embedding, Embedding]:
    """(e_tgt, e_opt) of an Imagic artifact, refused in one line unless their shapes fit `model`:
    tokens [1, L, D] and, on SDXL, pooled [1, P] (`embedding_tensors`)."""
    empty = model.encode_condition([""])
    shapes = {name: (1, *empty.tokens.shape[1:]) for name in ("e_tgt", "e_opt")}
    if empty.pooled is not None:
        shapes.update({n + POOLED_SUFFIX: (1, empty.pooled.shape[1]) for n in ("e_tgt", "e_opt")})
    artifact.require(shapes)
    pooled = empty.pooled is not None
    return tuple(
        embedding(
            artifact[name].float(), artifact[name + POOLED_SUFFIX].float() if pooled else None
        )
        for name in ("e_tgt", "e_opt")
    )


@torch.no_grad()
def sample_interpolations(
    model,
    e_tgt: Embedding,
    e_opt: Embedding,
    etas: list[float],
    seeds: list[int],
    num_inference_steps: int,
    guidance_scale: float,
    batch_size: int = 8,
    progress: bool = False,
    clip_x0: bool = False,
    size: tuple[int, int] | None = None,
) -> list[tuple[float, int, Tensor]]:
    """Images [3, H, W] in [-1, 1] for every (eta, seed), in eta-major order; (H, W) = `size`,
    the working size the embedding was fitted at (default: the model's square).

    Samples are batched `batch_size` at a time; each seed's x_T does not depend on the batching.
    e_tgt, e_opt: [1, L, D] tensors, or SDXL `Conditioning`s (`Embedding`).
    """
    device = model.device
    e_tgt, e_opt = e_tgt.to(device), e_opt.to(device)
    uncond = text_embedding(model, "").to(device)
    combos = list(itertools.product(etas, seeds))
    out: list[tuple[float, int, Tensor]] = []
    for start in range(0, len(combos), batch_size):
        chunk = combos[start : start + batch_size]
        # 1. Interpolated conditions and per-seed initial noise.
        cond = cat_conditions([interpolate(e_tgt, e_opt, eta) for eta, _ in chunk])
        x_T = initial_noise([seed for _, seed in chunk], model.sample_shape(size), device)
        # 2. Guided DDIM sampling of the (fine-tuned) model.
        z0 = sample(
            model, cond, x_T, num_inference_steps, guidance_scale, uncond, progress, clip_x0
        )
        # 3. Decode to pixels.
        images = model.decode(z0).clamp(-1, 1).cpu()
        out += [(eta, seed, img) for (eta, seed), img in zip(chunk, images)]
    return out


@dataclass(eq=False)
class ImagicEditor:
    """`python edit.py method=imagic checkpoint_dir=D [method.eta=[0.6,0.7]] [method.seeds=[0,1]]`.

    The fields are the settings of configs/method/imagic.yaml; `__post_init__` checks them and
    sets the normalised `etas` and `seeds` (lists).
    """

    # The train.py artifacts this method edits from (`checkpoint_dir=D`); not a setting.
    artifacts: ClassVar[tuple[str, ...]] = ("imagic_finetune", "imagic_embed", "imagic_sr_finetune")
    # Runs on SDXL: e_tgt / e_opt carry the pooled embedding (module docstring).
    supports_sdxl: ClassVar[bool] = True

    # Interpolation weight, one value or a list (paper: typical 0.6-0.8; 0.7 project choice).
    eta: float | Sequence[float] = 0.7
    # One seed or a list; each gives a different sample per eta (the paper samples several and
    # shows the best, 8 in its figures; project choice: 4, half the CPU cost).
    seeds: int | Sequence[int] = (0, 1, 2, 3)
    # DDIM steps (public ports: 45-50).
    num_inference_steps: int = 50
    # Classifier-free guidance weight w (SD default 7.5).
    guidance_scale: float = 7.5
    # Samples per UNet batch (project choice).
    batch_size: int = 8
    # Use the fine-tuned UNet (imagic_finetune artifact); false samples the base model with the
    # embedding artifact only (the paper's "no fine-tuning" ablation).
    finetuned: bool = True
    # Cascades only: auto (= finetuned on a cascade, nothing otherwise) | finetuned (the
    # imagic_sr_finetune artifact, paper) | pretrained | none (bicubic upsampling).
    sr: str = "auto"
    # The SR stage's DDIM steps and CFG weight (IF-II defaults 50 and 4).
    sr_num_inference_steps: int = 50
    sr_guidance_scale: float = 4.0
    # Low-res augmentation level (None: the fine-tune's for sr=finetuned, the SR model's for
    # pretrained).
    sr_noise_level: int | None = None
    # Clip the predicted x0 to [-1, 1] at every base-stage step: "auto" does on pixel cascades
    # (Imagen's sampler clips, dynamic thresholding aside; at guidance 7.5 unclipped pixel samples
    # saturate), never on latent or single-stage pixel models | "true" | "false".
    clip_x0: str = "auto"
    # "none" (results in (eta, seed) order) | "clip_lpips": results ordered by CLIP similarity to
    # the target text minus `select_lpips_weight` x LPIPS to the input, best first (the paper
    # picks the best sample; needs image= and a CLIP via the top-level `clip` group).
    select: str = "none"
    select_lpips_weight: float = 1.0
    # The CLIP: `clip.path` / `clip.name` of the top-level config (project choice).
    clip_path: str | None = None
    clip_name: str | None = None
    # The method's name in results and tables.
    name: str = "imagic"

    def __post_init__(self) -> None:
        self.etas = settings.numbers(self.eta, "eta", 0.0, ETA_MAX)
        self.seeds = settings.integers(self.seeds, "seeds")
        self.num_inference_steps = settings.integer(
            self.num_inference_steps, "num_inference_steps", 1, 1000
        )
        self.guidance_scale = settings.number(self.guidance_scale, "guidance_scale", 0.0)
        self.batch_size = settings.integer(self.batch_size, "batch_size", 1)
        self.finetuned = settings.flag(self.finetuned, "finetuned")
        self.sr = settings.choice(self.sr, "sr", SR_CHOICES)
        self.sr_num_inference_steps = settings.integer(
            self.sr_num_inference_steps, "sr_num_inference_steps", 1, 1000
        )
        self.sr_guidance_scale = settings.number(self.sr_guidance_scale, "sr_guidance_scale", 0.0)
        self.sr_noise_level = settings.optional_integer(
            self.sr_noise_level, "sr_noise_level", 0, 999
        )
        self.clip_x0 = settings.choice(
            str(self.clip_x0).lower(), "clip_x0", ("auto", "true", "false")
        )
        self.select = settings.choice(self.select, "select", ("none", "clip_lpips"))
        self.select_lpips_weight = settings.number(
            self.select_lpips_weight, "select_lpips_weight", 0
        )
        self._clip = None

    def selection_scores(self, images: Tensor, source: Tensor, prompt: str) -> dict[str, Tensor]:
        """Per sample [B]: `clip_score` (cosine of the CLIP embeddings of the image and the target
        text), `lpips` (AlexNet LPIPS to the input, both at the sample size, enlarged bilinearly
        below LPIPS's minimum) and `select_score` = clip_score - select_lpips_weight * lpips."""
        import torch.nn.functional as F

        from editing.editors.blended_guidance import resize_for_clip
        from editing.editors.candidates import cached_clip
        from editing.models.lpips_weights import LPIPS_MIN_SIZE, make_lpips

        clip = cached_clip(self, "cpu")
        size = tuple(images.shape[-2:])
        src = F.interpolate(source.float(), size=size, mode="bilinear", align_corners=False)
        with torch.no_grad():
            text = F.normalize(clip.encode_text([prompt]).float(), dim=-1)
            pixels = resize_for_clip(images.float().add(1).div(2).clamp(0, 1), clip.image_size)
            emb = F.normalize(clip.encode_image(pixels).float(), dim=-1)
            clip_score = (emb @ text.T).flatten()
            a, b = images.float(), src.expand_as(images)
            if min(size) < LPIPS_MIN_SIZE["alex"]:
                m = LPIPS_MIN_SIZE["alex"]
                a = F.interpolate(a, size=(m, m), mode="bilinear", align_corners=False)
                b = F.interpolate(b, size=(m, m), mode="bilinear", align_corners=False)
            lp = make_lpips("alex", "cpu")(a, b).flatten().float()
        score = clip_score - self.select_lpips_weight * lp
        return {"select_score": score, "clip_score": clip_score, "lpips": lp}

    def clips_x0(self, model) -> bool:
        """Whether base-stage sampling clips x0 (`clip_x0`; auto: on pixel cascades)."""
        if self.clip_x0 == "auto":
            return getattr(model, "sr", None) is not None and not model.is_latent
        return self.clip_x0 == "true"

    def load(self, model, inputs: Inputs) -> Artifact:
        """The artifact this edit uses, checked against the model (and image, if one is given)."""
        if inputs.checkpoint_dir is None:
            raise UserInputError(
                "method=imagic needs checkpoint_dir=D, the output_dir of `python train.py stage=imagic`"
            )
        stage = "imagic_finetune" if self.finetuned else "imagic_embed"
        expect = model_metadata(model)
        if inputs.image is not None:
            expect.update(image_metadata(inputs.image))
        artifact = load_artifact(
            inputs.checkpoint_dir / f"{stage}.safetensors",
            stage,
            expect=expect,
            hint=f"run `python train.py stage=imagic output_dir={inputs.checkpoint_dir} ...` first",
            loaded=inputs.artifacts,
        )
        check_weights(artifact, model)
        artifact_embeddings(artifact, model)  # shapes checked before any sampling
        trained_for = artifact.metadata.get("target_prompt", "")
        if inputs.target_prompt and inputs.target_prompt != trained_for:
            raise UserInputError(
                f"the Imagic checkpoint in {inputs.checkpoint_dir} was trained for target_prompt="
                f"{trained_for!r}, not {inputs.target_prompt!r}: train again for a new target text"
            )
        return artifact

    def sr_stage(self, model, inputs: Inputs, artifact: Artifact):
        """(mode, SR stage or None, noise level) of this edit; mode None for single-stage models.

        sr=finetuned reads `imagic_sr_finetune.safetensors` and refuses one made with another SR
        stage or base model, or for another image or target text than the base artifact.
        """
        if self.sr == "auto" and getattr(model, "sr", None) is None:
            return None, None, None
        mode = "finetuned" if self.sr == "auto" else self.sr
        sr = require_sr(model, f"method.sr={mode}")
        level = (
            sr.noise_level if self.sr_noise_level is None else sr.check_level(self.sr_noise_level)
        )
        if mode != "finetuned":
            return mode, (sr if mode == "pretrained" else None), level
        identity = {k: v for k, v in sr_metadata(sr).items() if k != "sr_weights_hash"}
        expect = {**model_metadata(model), **identity}
        facts = ("image_sha256", "working_size", "target_prompt")
        expect.update({k: artifact.metadata.get(k, "") for k in facts})
        tuned = load_artifact(
            inputs.checkpoint_dir / "imagic_sr_finetune.safetensors",
            "imagic_sr_finetune",
            expect=expect,
            hint=f"run `python train.py stage=imagic_sr_finetune output_dir={inputs.checkpoint_dir}"
            " ...` (or stage=imagic_cascade for all stages), or edit with method.sr=pretrained",
            loaded=inputs.artifacts,
        )
        if tuned.metadata.get("sr_weights_hash") != sr.identity.weights_hash:
            log.warning("%s was made with other SR weights than these", tuned.path)
        if self.sr_noise_level is None:
            level = int(tuned.metadata["sr_noise_level"])
        return mode, sr.with_unet(finetuned_unet(sr.unet, tuned.tensors, tuned.metadata)), level

    def __call__(self, model, inputs: Inputs) -> list[EditResult]:
        if self.select != "none" and inputs.image is None:
            raise UserInputError(
                f"method.select={self.select} compares every sample with the input: give image=PATH"
            )
        artifact = self.load(model, inputs)
        # 0. The SR stage of a cascade (checked before any sampling).
        sr_mode, sr, sr_level = self.sr_stage(model, inputs, artifact)
        # 1. The fine-tuned model: a copy of the base UNet with the artifact's weights.
        if self.finetuned and has_unet_weights(artifact.tensors):
            model = model.with_unet(finetuned_unet(model.unet, artifact.tensors, artifact.metadata))
        # 2. Interpolate the embeddings and sample every (eta, seed).
        e_tgt, e_opt = artifact_embeddings(artifact, model)
        samples = sample_interpolations(
            model,
            e_tgt,
            e_opt,
            self.etas,
            self.seeds,
            self.num_inference_steps,
            self.guidance_scale,
            self.batch_size,
            progress=True,
            clip_x0=self.clips_x0(model),
            size=working_size(artifact.metadata, model, artifact.path),
        )
        # 3. Cascades: super-resolve each sample with e_tgt (paper), or upsample it (sr=none).
        if sr_mode is not None:
            samples = self.super_resolve(model, sr, sr_mode, sr_level, artifact, samples)
        prompt = artifact.metadata.get("target_prompt", "")
        extra = {"sr": "none", "sr_upsampling": "bicubic"} if sr_mode == "none" else {}
        if sr_mode in ("finetuned", "pretrained"):
            extra = {
                "sr": sr_mode,
                "sr_noise_level": sr_level,
                "sr_num_inference_steps": self.sr_num_inference_steps,
                "sr_guidance_scale": self.sr_guidance_scale,
            }
        results = [
            EditResult(
                image=img,
                label=f"eta={eta:g} seed={seed}",
                params={
                    "method": self.name,
                    "prompt": prompt,
                    "eta": eta,
                    "seed": seed,
                    "num_inference_steps": self.num_inference_steps,
                    "guidance_scale": self.guidance_scale,
                    **extra,
                },
            )
            for eta, seed, img in samples
        ]
        if self.select == "none":
            return results
        # 4. Selection: best CLIP-to-text vs LPIPS-to-input trade-off first (then the others).
        images = torch.stack([r.image for r in results])
        scores = self.selection_scores(images, inputs.image.pixels, prompt)
        order = sorted(range(len(results)), key=lambda k: -float(scores["select_score"][k]))
        ranked = []
        for rank, k in enumerate(order):
            r = results[k]
            values = {name: float(v[k]) for name, v in scores.items()}
            params = {**r.params, "select": self.select, "rank": rank + 1, **values}
            label = f"#{rank + 1} {r.label} score={values['select_score']:.4f}"
            ranked.append(EditResult(r.image, label, params))
        return ranked

    def super_resolve(self, model, sr, mode, level, artifact, samples):
        """Base samples [(eta, seed, [3, h, w])] -> the same at the SR resolution."""
        if mode == "none":
            return [
                (eta, seed, upscale_output(img[None], sr_size(model, img.shape[-2:]))[0])
                for eta, seed, img in samples
            ]
        e_tgt = artifact["e_tgt"]
        uncond = model.encode_prompt([""])
        out = []
        for start in range(0, len(samples), self.batch_size):
            chunk = samples[start : start + self.batch_size]
            low = torch.stack([img for _, _, img in chunk])
            seeds = [seed for _, seed, _ in chunk]
            high = super_resolve(
                sr,
                low,
                e_tgt,
                uncond,
                seeds,
                self.sr_num_inference_steps,
                self.sr_guidance_scale,
                level,
                progress=True,
                size=sr_size(model, low.shape[-2:]),
            )
            out += [(eta, seed, img) for (eta, seed, _), img in zip(chunk, high)]
        return out
