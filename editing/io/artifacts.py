"""Safetensors artifacts: the only interface between a training stage and the edits that use it.

An artifact is one `.safetensors` file of tensors plus string metadata describing exactly what
produced it: the stage, the base model's identity, the image's content hash, the prompts, the
resolution, the scheduler and step count, the guidance, the hyper-parameters and library versions.
`load_artifact(path, stage, expect=...)` refuses an artifact whose recorded facts differ from what
the current run expects, naming each difference, so a stale inversion or a fine-tune of another base
model can never be used by mistake. Writes are atomic (`editing.io.atomic`: temporary file in the
same folder, fsync, rename; the temporary file is removed on every exit path), so a kill at any
moment leaves the old artifact or the complete new one, never a part.

Reproducible bytes: the header is written with the metadata keys sorted (safetensors' own writer
serialises metadata from a hash map, in an order that changes from run to run), so the same tensors
and metadata always give the same file. Whether the tensors repeat is up to the training: same
seed + same torch intra-op thread count (`torch.get_num_threads()`, set by `OMP_NUM_THREADS`) +
same machine and library versions => the same bytes. Another thread count splits the float
reductions of the matrix products differently and changes the trained tensors' last bits.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as serialize
from torch import Tensor

from editing.errors import UserInputError
from editing.io.atomic import atomic_file

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"

# Keys that must match between an artifact and the run that uses it, with the words used to
# describe a mismatch.
IDENTITY_KEYS = {
    "base_model": "base model",
    "base_model_config_hash": "base model configuration",
    "resolution": "resolution",
    "working_size": "working size (H x W)",
    "conditioning": "text conditioning",
}

CONDITIONING_WORDS = {
    "text": "an SD-type model (one text encoder's token embeddings)",
    "sdxl": "an SDXL model (two text encoders' token embeddings, a pooled embedding and size time ids)",
}
"""How a refusal names each `DiffusionModel.conditioning_kind`."""


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
    meta = {
        "base_model": ident.name,
        "base_model_config_hash": ident.config_hash,
        "base_model_weights_hash": ident.weights_hash,
        "resolution": str(model.resolution),
        "conditioning": conditioning_kind(model),
    }
    if meta["conditioning"] == "sdxl":
        meta["sdxl_pooled_dim"] = str(model.pooled_dim)
    return meta


def conditioning_kind(model) -> str:
    """What the model's UNet is conditioned on: "text" (SD 1.x/2.x, IF, the demo and unconditional
    models) or "sdxl" (`DiffusionModel.conditioning_kind`)."""
    return str(getattr(model, "conditioning_kind", "text"))


def sdxl_time_ids(size: tuple[int, int]) -> str:
    """SDXL's time ids of a working size (H, W) as metadata: "H,W,0,0,H,W" (original size, crop
    top-left, target size), the numbers `editing.models.sdxl.size_time_ids` conditions on."""
    from editing.models.sdxl import size_time_ids

    return ",".join(str(int(v)) for v in size_time_ids((int(size[0]), int(size[1])))[0].tolist())


def format_size(size: tuple[int, int]) -> str:
    """(H, W) -> "HxW", the `working_size` metadata value."""
    return f"{int(size[0])}x{int(size[1])}"


def image_metadata(image) -> dict[str, str]:
    """The content facts of a `LoadedImage`: its hash and working size (H, W)."""
    return {"image_sha256": image.sha256, "working_size": format_size(image.size)}


def working_size(
    metadata: Mapping[str, str], model, path: Path | str = "artifact"
) -> tuple[int, int]:
    """The (H, W) an artifact was made at (`working_size`; the model's square for artifacts that
    predate the key)."""
    text = metadata.get("working_size", "")
    if not text:
        return (int(model.resolution), int(model.resolution))
    try:
        height, width = (int(v) for v in text.split("x"))
    except ValueError:
        raise UserInputError(
            f"{path}: metadata working_size={text!r} is not HxW; re-run the stage that made it"
        ) from None
    return (height, width)


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
    if meta["conditioning"] == "sdxl":  # the size conditioning the stage ran with
        size = meta.get("working_size") or format_size((model.resolution, model.resolution))
        meta["sdxl_time_ids"] = sdxl_time_ids(tuple(int(v) for v in size.split("x")))
    meta["hparams"] = json.dumps(hparams or {}, sort_keys=True, default=str)
    meta["versions"] = json.dumps(library_versions(), sort_keys=True)
    return meta


def sorted_header(data: bytes) -> tuple[bytes, memoryview]:
    """(header, body) of `data` (a safetensors file) with its header rewritten in a fixed order:
    `__metadata__` first with its keys sorted, then the tensors in the order of their data. The
    body is a view of `data`'s tensor bytes, unchanged and not copied (their offsets are relative
    to the end of the header): writing the two parts one after the other writes the file without
    a second copy of the tensors in memory (a full SD 1.5 UNet is 3.4 GB in fp32)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    ordered = {}
    if "__metadata__" in header:
        ordered["__metadata__"] = dict(sorted(header.pop("__metadata__").items()))
    for key in sorted(header, key=lambda k: (header[k]["data_offsets"], k)):
        ordered[key] = header[key]
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # safetensors aligns the data to 8 bytes with spaces
    return struct.pack("<Q", len(text)) + text, memoryview(data)[8 + n :]


def save_artifact(path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> Path:
    """Write `tensors` + `metadata` to `path` atomically, with a reproducible header (see the
    module docstring: same tensors and metadata => same bytes)."""
    path = Path(path)
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    bad = [k for k, v in metadata.items() if not isinstance(v, str)]
    if bad:
        raise TypeError(f"artifact metadata values must be strings: {bad}")
    header, body = sorted_header(serialize(clean, metadata=metadata))
    with atomic_file(path, "artifact") as tmp, open(tmp, "wb") as f:
        f.write(header)
        f.write(body)
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


INPUT_IMAGE_KEY = "input_image"
"""The tensor of a training artifact that holds the stage's input as the model saw it, uint8
[3, H, W]: what edit.py shows as the input of its grid when an edit from the artifact is given no
image=."""


def with_input_image(tensors: dict[str, Tensor], pixels: Tensor | None) -> dict[str, Tensor]:
    """`tensors` plus `INPUT_IMAGE_KEY`: `pixels` ([1, 3, H, W] or [3, H, W] in [-1, 1]) as uint8;
    `tensors` unchanged when there is no image."""
    if pixels is None:
        return tensors
    x = pixels[0] if pixels.dim() == 4 else pixels
    uint8 = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return {**tensors, INPUT_IMAGE_KEY: uint8.contiguous()}


def stored_input_image(path: str | Path) -> Tensor | None:
    """The input image kept in the artifact at `path`, [3, H, W] float32 in [-1, 1]; None when the
    file, or the tensor in it, does not exist (artifacts written before it was kept) or the file
    cannot be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            names = set(f.keys())
            if INPUT_IMAGE_KEY not in names:
                return None
            uint8 = f.get_tensor(INPUT_IMAGE_KEY)
    except (SafetensorError, OSError, ValueError):
        return None
    return uint8.float() / 127.5 - 1.0


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


def aligned(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """CPU tensors read from a file copied, one at a time, into memory of their own.

    A file's tensors sit at offsets that depend on the header's length and the tensors before
    them; CPU kernels (oneDNN, MKL) take other code paths for memory that is not 64-byte aligned,
    and their float results then differ in the last bits. A copy is aligned, so an edit from an
    artifact computes exactly what the trained module computed, whatever the file's layout.
    """
    for key in list(tensors):
        if tensors[key].device.type == "cpu":
            tensors[key] = tensors[key].clone()
    return tensors


def load_artifact(
    path: str | Path,
    stage: str,
    expect: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    hint: str = "",
    loaded: Mapping[Path, Artifact] | None = None,
) -> Artifact:
    """Load the artifact of `stage` at `path`, refusing it if it does not match `expect`.

    Args:
        path: the `.safetensors` file.
        stage: the stage that must have written it.
        expect: metadata the current run requires (values compared as strings), typically
            `model_metadata(model)` plus content keys such as image_sha256 or source_prompt.
        hint: how to produce the artifact, appended to the "not found" message.
        loaded: artifacts already in memory by file path (`Inputs.artifacts`, filled by the
            Python API so many edits share one read). When it holds `path`, that artifact is
            used instead of reading the file: its metadata goes through the same checks, its
            tensors were checked for NaN when it was loaded and are moved to `device`.

    Raises:
        UserInputError: missing/corrupt file, another stage, or any expected key that differs
            (all differences listed in one line).
    """
    path = Path(path)
    preloaded = (loaded or {}).get(path)
    if preloaded is not None:
        check_metadata(path, preloaded.metadata, stage, expect)
        tensors = {k: v.to(device) for k, v in preloaded.tensors.items()}
        return Artifact(path=path, tensors=tensors, metadata=preloaded.metadata)
    if not path.is_file():
        raise UserInputError(f"no {stage} artifact at {path}" + (f": {hint}" if hint else ""))
    try:
        meta = read_metadata(path)
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserInputError(f"{path} is not a readable safetensors artifact ({err})") from None
    check_metadata(path, meta, stage, expect)
    check_finite(path, tensors)
    return Artifact(path=path, tensors=aligned(tensors), metadata=meta)


def check_metadata(
    path: Path, meta: Mapping[str, str], stage: str, expect: dict[str, Any] | None = None
) -> None:
    """Refuse an artifact of another format version or stage, or whose metadata differs from
    `expect` (every difference named in one line)."""
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserInputError(
            f"{path} has artifact format {meta.get('format_version')!r}, this version reads "
            f"{FORMAT_VERSION!r}: re-run the stage that made it"
        )
    if meta.get("stage") != stage:
        raise UserInputError(f"{path} is a {meta.get('stage')!r} artifact, not {stage!r}")
    check_conditioning_kind(path, meta, expect)
    differences = []
    for key, wanted in (expect or {}).items():
        wanted = "" if wanted is None else str(wanted)
        have = meta.get(key, "text" if key == "conditioning" else None)
        if have != wanted:
            label = IDENTITY_KEYS.get(key, key)
            differences.append(f"{label}: artifact has {have!r}, this run has {wanted!r}")
    if differences:
        raise UserInputError(f"{path} does not match this run ({'; '.join(differences)})")


def check_conditioning_kind(
    path: Path, meta: Mapping[str, str], expect: dict[str, Any] | None
) -> None:
    """Refuse, in one line, an artifact made with a model conditioned otherwise than this run's
    (an SDXL artifact on an SD model or the other way round). Artifacts that predate the key
    were made with "text" models."""
    wanted = (expect or {}).get("conditioning")
    have = meta.get("conditioning", "text")
    if wanted is None or str(wanted) == have:
        return
    words = CONDITIONING_WORDS
    raise UserInputError(
        f"{path} was made with {words.get(have, have)} ({meta.get('base_model')!r}) and cannot be "
        f"used with {words.get(str(wanted), wanted)} ({(expect or {}).get('base_model')!r}): "
        f"use the base model it was made with"
    )


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
