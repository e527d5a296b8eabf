"""Safetensors artifacts: the only interface between a training stage and the edits that use it.

An artifact is one `.safetensors` file of tensors plus string metadata describing exactly what
produced it: the stage, the base model's identity, the image's content hash, the prompts, the
resolution, the scheduler and step count, the guidance, the hyper-parameters and library versions.
`load_artifact(path, stage, expect=...)` refuses an artifact whose recorded facts differ from what
the current run expects, naming each difference, so a stale inversion or a fine-tune of another base
model can never be used by mistake. Writes are atomic (temporary file in the same folder, then
rename), so a crash never leaves a half-written artifact behind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from editing.errors import UserInputError

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"

# Keys that must match between an artifact and the run that uses it, with the words used to
# describe a mismatch.
IDENTITY_KEYS = {
    "base_model": "base model",
    "base_model_config_hash": "base model configuration",
    "resolution": "resolution",
}


def library_versions() -> dict[str, str]:
    import diffusers
    import transformers

    return {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }


def model_metadata(model) -> dict[str, str]:
    """The identity facts of a `DiffusionModel` as artifact metadata."""
    ident = model.identity
    return {
        "base_model": ident.name,
        "base_model_config_hash": ident.config_hash,
        "base_model_weights_hash": ident.weights_hash,
        "resolution": str(model.resolution),
    }


def make_metadata(
    stage: str, model, hparams: dict[str, Any] | None = None, **facts: Any
) -> dict[str, str]:
    """Metadata for an artifact of `stage` made with `model`.

    `facts` are further content keys (image_sha256, source_prompt, target_prompt, scheduler,
    num_inference_steps, guidance_scale, ...): stored as strings (None as "").
    """
    meta = {"format_version": FORMAT_VERSION, "stage": stage, **model_metadata(model)}
    for key, value in facts.items():
        meta[key] = "" if value is None else str(value)
    meta["hparams"] = json.dumps(hparams or {}, sort_keys=True, default=str)
    meta["versions"] = json.dumps(library_versions(), sort_keys=True)
    return meta


def save_artifact(path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> Path:
    """Write `tensors` + `metadata` to `path` atomically (tmp file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    bad = [k for k, v in metadata.items() if not isinstance(v, str)]
    if bad:
        raise TypeError(f"artifact metadata values must be strings: {bad}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(clean, tmp, metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; artifacts are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@dataclass
class Artifact:
    """A loaded artifact: its tensors and its metadata."""

    path: Path
    tensors: dict[str, Tensor]
    metadata: dict[str, str]

    @property
    def hparams(self) -> dict[str, Any]:
        return json.loads(self.metadata.get("hparams", "{}"))

    def __getitem__(self, key: str) -> Tensor:
        return self.tensors[key]

    def require(self, shapes: dict[str, tuple[int | None, ...]]) -> None:
        """Refuse the artifact unless each named tensor exists with that shape (None: any size
        along that dimension); floating tensors must be floating, the others integers."""
        for name, shape in shapes.items():
            if name not in self.tensors:
                raise UserInputError(
                    f"{self.path} has no tensor {name!r}: re-run the stage that made it"
                )
            have = tuple(self.tensors[name].shape)
            fits = len(have) == len(shape) and all(w in (None, h) for h, w in zip(have, shape))
            if not fits:
                wanted = tuple("*" if w is None else w for w in shape)
                raise UserInputError(
                    f"{self.path}: tensor {name!r} has shape {have}, this model needs {wanted}: "
                    "it was made for another model or damaged; re-run the stage that made it"
                )

    def number(self, key: str, cast: type = float) -> float | int:
        """Metadata value `key` as a number, refused in one line when it is not one."""
        value = self.metadata.get(key)
        try:
            number = cast(value)
        except (TypeError, ValueError):
            raise UserInputError(
                f"{self.path}: metadata {key}={value!r} is not a number; re-run the stage that made it"
            ) from None
        if isinstance(number, float) and not math.isfinite(number):
            raise UserInputError(f"{self.path}: metadata {key}={value!r} is not finite")
        return number


def check_finite(path: Path, tensors: dict[str, Tensor]) -> None:
    """Refuse an artifact whose floating tensors hold NaN or infinite values."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserInputError(
                f"{path}: tensor {name!r} holds NaN or infinite values (a diverged or damaged run); "
                "re-run the stage that made it"
            )


def read_metadata(path: str | Path) -> dict[str, str]:
    """Only the metadata of an artifact (cheap: the tensors are not read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_artifact(
    path: str | Path,
    stage: str,
    expect: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    hint: str = "",
) -> Artifact:
    """Load the artifact of `stage` at `path`, refusing it if it does not match `expect`.

    Args:
        path: the `.safetensors` file.
        stage: the stage that must have written it.
        expect: metadata the current run requires (values compared as strings), typically
            `model_metadata(model)` plus content keys such as image_sha256 or source_prompt.
        hint: how to produce the artifact, appended to the "not found" message.

    Raises:
        UserInputError: missing/corrupt file, another stage, or any expected key that differs
            (all differences listed in one line).
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"no {stage} artifact at {path}" + (f": {hint}" if hint else ""))
    try:
        meta = read_metadata(path)
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserInputError(f"{path} is not a readable safetensors artifact ({err})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserInputError(
            f"{path} has artifact format {meta.get('format_version')!r}, this version reads "
            f"{FORMAT_VERSION!r}: re-run the stage that made it"
        )
    if meta.get("stage") != stage:
        raise UserInputError(f"{path} is a {meta.get('stage')!r} artifact, not {stage!r}")
    differences = []
    for key, wanted in (expect or {}).items():
        wanted = "" if wanted is None else str(wanted)
        have = meta.get(key)
        if have != wanted:
            label = IDENTITY_KEYS.get(key, key)
            differences.append(f"{label}: artifact has {have!r}, this run has {wanted!r}")
    if differences:
        raise UserInputError(f"{path} does not match this run ({'; '.join(differences)})")
    check_finite(path, tensors)
    return Artifact(path=path, tensors=tensors, metadata=meta)


def check_weights(artifact: Artifact, model) -> None:
    """Warn (not refuse) when the base weights' fingerprint differs from the artifact's.

    The fingerprint changes with the weights' precision (a float16 load of a float32 checkpoint)
    as well as with other weights, so it is advisory; name and configuration are enforced.
    """
    recorded = artifact.metadata.get("base_model_weights_hash")
    if recorded and recorded != model.identity.weights_hash:
        log.warning(
            "%s was made with base weights %s, these are %s: same model name and configuration but "
            "other (or differently rounded) weights; results may differ from the training run",
            artifact.path,
            recorded,
            model.identity.weights_hash,
        )
