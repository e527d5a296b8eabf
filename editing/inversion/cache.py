"""A DDIM inversion that records its noise predictions, cached as a content-keyed artifact.

Optimisation-free editors that start from an inverted image (Direct Inversion, Elarabawy et al.
2022; any method that needs x_T and the per-step eps of a DDIM inversion) share this per-image
state. It is computed by `editing.inversion.ddim_inversion.invert` (the one inversion) and, when the user gives
`checkpoint_dir=D`, saved as `D/<stage>.safetensors` through `editing.io.artifacts` (atomic write).

The artifact is keyed by content, never by file name or time: the image's sha256, the inversion
prompt, the base model identity (name, configuration hash *and* weights fingerprint: a cache is
strict, unlike a training artifact whose weights are only advisory), the resolution, the number of
inversion steps, the inversion guidance, the compute precision and the VAE's precision. A later run with the same key
reuses the file (and logs that it did); any difference is logged and the inversion is recomputed
and the file overwritten, so a stale inversion is never used. Without a checkpoint_dir nothing is
read or written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor

from editing.diffusion.ddim import DDIMSchedule, Inversion, make_schedule
from editing.errors import UserInputError
from editing.inversion.ddim_inversion import invert
from editing.io.artifacts import (
    format_size,
    load_artifact,
    make_metadata,
    model_metadata,
    save_artifact,
)
from editing.io.images import LoadedImage

log = logging.getLogger(__name__)


def _compute_precision(model) -> str:
    """The precision the UNet runs at: its dtype, or the ambient autocast dtype."""
    device_type = model.device.type
    if torch.is_autocast_enabled(device_type):
        return f"autocast-{torch.get_autocast_dtype(device_type)}".replace("torch.", "")
    return str(model.dtype).replace("torch.", "")


def _vae_precision(model) -> str:
    """The VAE's storage dtype (it encodes z0; SDXL keeps it fp32 beside a half-precision UNet),
    "none" for a pixel model."""
    vae = getattr(model, "vae", None)
    return "none" if vae is None else str(vae.dtype).replace("torch.", "")


def inversion_key(
    model,
    image_sha256: str,
    inversion_prompt: str,
    num_inversion_steps: int,
    size: tuple[int, int] | None = None,
) -> dict[str, str]:
    """The content key of an inversion artifact: every fact its tensors depend on (strings);
    `size` is the working size (H, W) (default: the model's square)."""
    return {
        **model_metadata(model),
        "image_sha256": image_sha256,
        "working_size": format_size(size or (model.resolution, model.resolution)),
        "inversion_prompt": inversion_prompt,
        "num_inversion_steps": str(int(num_inversion_steps)),
        "inversion_guidance_scale": "1",
        "compute_precision": _compute_precision(model),
        "vae_precision": _vae_precision(model),
    }


def _check_shapes(tensors: dict[str, Tensor], schedule: DDIMSchedule, latent_shape) -> str | None:
    """Why a loaded inversion cannot be this run's (None when it fits)."""
    x_T, eps = tensors["x_T"], tensors["eps"]
    if tuple(x_T.shape) != (1, *latent_shape):
        return f"x_T has shape {tuple(x_T.shape)}, this model samples {(1, *latent_shape)}"
    if tuple(eps.shape) != (len(schedule), 1, *latent_shape):
        return f"eps has shape {tuple(eps.shape)}"
    if not torch.equal(tensors["timesteps"].cpu(), schedule.timesteps.cpu()):
        return "its timesteps differ from this scheduler's"
    return None


def load_or_invert(
    model,
    image: LoadedImage,
    inversion_prompt: str,
    num_inversion_steps: int,
    checkpoint_dir: str | Path | None,
    stage: str,
    progress: bool = False,
) -> Inversion:
    """The recorded DDIM inversion of `image`, reused from `checkpoint_dir/<stage>.safetensors`
    when its content key matches, else computed (and saved there when checkpoint_dir is given).

    Args:
        model: a `DiffusionModel`; the inversion runs on its device.
        image: the preprocessed input image ([1, 3, H, W] pixels and their sha256).
        inversion_prompt: the text the inversion is conditioned on ("" in the reference).
        num_inversion_steps: N, the DDIM inversion steps.
        checkpoint_dir: the cache folder, or None for no caching.
        stage: the artifact's stage name and file stem ("direct_inversion").
    Returns:
        An `Inversion` (x_T, schedule, eps; the trajectory too when computed now) on the model's
        device.
    """
    device = model.device
    schedule = make_schedule(model.scheduler, num_inversion_steps)
    key = inversion_key(model, image.sha256, inversion_prompt, num_inversion_steps, image.size)
    path = Path(checkpoint_dir) / f"{stage}.safetensors" if checkpoint_dir is not None else None

    # 1. Reuse a cached inversion whose content key matches this run exactly.
    if path is not None and path.exists():
        reason = None
        try:
            artifact = load_artifact(path, stage, expect=key, device=device)
        except UserInputError as err:
            reason = str(err)
        else:
            shape = model.sample_shape(image.size)
            reason = _check_shapes(artifact.tensors, schedule, shape)
            if reason is None:
                record = Inversion(
                    x_T=artifact["x_T"],
                    schedule=schedule.to(device),
                    eps=artifact["eps"],
                    prompt=inversion_prompt,
                )
                log.info(
                    "reusing the inversion in %s (same image, inversion prompt, base model, "
                    "resolution and %d steps)",
                    path,
                    num_inversion_steps,
                )
                return record
            reason = f"{path}: {reason}"
        log.info("recomputing the inversion (the cached one will be overwritten): %s", reason)

    # 2. DDIM inversion of z0 = E(image) (posterior mean: deterministic) with eps recorded.
    z0 = model.encode_image(image.pixels.to(device))
    emb = model.encode_condition([inversion_prompt], "inversion prompt")
    record = invert(model, z0, emb, schedule, inversion_prompt, progress=progress)

    # 3. Save it, keyed by content, when a cache folder was given.
    if path is not None:
        facts = {k: v for k, v in key.items() if k not in model_metadata(model)}
        tensors = {"x_T": record.x_T, "eps": record.eps, "timesteps": record.timesteps}
        save_artifact(path, tensors, make_metadata(stage, model, **facts))
        log.info("saved the inversion to %s", path)
    return record
