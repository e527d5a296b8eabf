"""`python -m editing_app.commands.export_unet checkpoint_dir=D out=O [base_model=B ...] [dtype=...]`
(installed: `diffusion-edit-export-unet ...`).

Writes the Imagic fine-tuned UNet of `D/imagic_finetune.safetensors` (a full fine-tune, or a LoRA
one fused) applied to the base model's UNet as a diffusers folder O, which
`UNet2DConditionModel.from_pretrained(O)` loads (and a pipeline takes as its `unet=`). The base
model is chosen as for edit.py (`base_model=`, `base_model.path=`, ...; default the demo model)
and must be the one the artifact was trained on. A bad input ends with one `error: ...` line,
exit status 2 and nothing written.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from editing.errors import UserInputError

log = logging.getLogger("export_unet")

USAGE = """usage: python -m editing_app.commands.export_unet checkpoint_dir=D out=O [base_model=B] [base_model.<setting>=V ...]
                                       [dtype=float32|float16|bfloat16]

Writes the fine-tuned UNet of D/imagic_finetune.safetensors (full or LoRA, fused) applied to the
base model's UNet as a diffusers folder O: UNet2DConditionModel.from_pretrained(O) loads it.
  checkpoint_dir  the output_dir of `python train.py stage=imagic` (or stage=imagic_finetune)
  out             a new or empty folder (an earlier UNet export there is replaced)
  base_model      as for edit.py (default demo); it must be the model the artifact was made with
  dtype           the saved weights' dtype (default: the base UNet's)"""

ARTIFACT_STAGE = "imagic_finetune"
OWN_KEYS = ("checkpoint_dir", "out", "dtype")


@dataclass
class ExportRequest:
    """The parsed command line: the artifact folder, the destination, the dtype and the
    `base_model...` overrides composed into the edit configuration."""

    checkpoint_dir: Path
    out: Path
    dtype: str | None = None
    base_model_overrides: list[str] = field(default_factory=list)


def parse_arguments(argv: list[str]) -> ExportRequest:
    """`key=value` arguments -> ExportRequest; an unknown, malformed or missing one is refused."""
    own: dict[str, str] = {}
    overrides: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise UserInputError(f"argument {arg!r} is not key=value (see --help)")
        if key in OWN_KEYS:
            own[key] = value
        elif key == "base_model" or key.startswith("base_model."):
            overrides.append(arg)
        else:
            raise UserInputError(
                f"unknown setting {key}: the settings are {', '.join(OWN_KEYS)}, base_model and "
                "base_model.<setting> (see --help)"
            )
    for key in ("checkpoint_dir", "out"):
        if not own.get(key):
            raise UserInputError(f"missing required setting {key}: pass {key}=...")
    return ExportRequest(Path(own["checkpoint_dir"]), Path(own["out"]), own.get("dtype"), overrides)


def base_model_config(overrides: list[str]):
    """The `base_model` node of the edit configuration composed with `overrides`."""
    from editing_app.configs import CONFIG_DIR, compose_config

    choices = CONFIG_DIR / "base_model"
    for arg in overrides:
        key, _, value = arg.partition("=")
        if key == "base_model" and not (choices / f"{value}.yaml").is_file():
            options = ", ".join(sorted(p.stem for p in choices.glob("*.yaml")))
            raise UserInputError(f"unknown base_model {value!r}: choose one of {options}")
    try:
        return compose_config("edit", overrides).base_model
    except Exception as err:  # Hydra's composition and parser errors
        raise UserInputError(" ".join(str(err).split())[:300]) from None


def export_unet(request: ExportRequest) -> Path:
    """Check the inputs (artifact, destination, dtype) before loading anything, then load the base
    model and the artifact and write the folder; returns it."""
    from editing.io.artifacts import check_weights, load_artifact, model_metadata, read_metadata
    from editing.models.unet_export import EXPORT_DTYPES, check_export_folder, export_finetuned_unet
    from editing.models.unet_weights import has_unet_weights
    from editing_app.runtime import load_base_model

    # 1. Cheap checks: the artifact is there and holds fine-tuned weights; the destination.
    path = request.checkpoint_dir / f"{ARTIFACT_STAGE}.safetensors"
    if not path.is_file():
        raise UserInputError(
            f"no {ARTIFACT_STAGE} artifact at {path}: give the output_dir of "
            "`python train.py stage=imagic ...` as checkpoint_dir="
        )
    try:
        metadata = read_metadata(path)
    except Exception as err:  # safetensors' header errors
        raise UserInputError(f"{path} is not a readable safetensors artifact ({err})") from None
    if metadata.get("finetune_mode") not in ("full", "lora"):
        raise UserInputError(
            f"{path} holds no fine-tuned UNet weights (an older or damaged artifact)"
        )
    if request.dtype is not None and request.dtype not in EXPORT_DTYPES:
        raise UserInputError(f"dtype={request.dtype!r} is not one of {', '.join(EXPORT_DTYPES)}")
    check_export_folder(request.out)
    cfg = base_model_config(request.base_model_overrides)

    # 2. The base model, the artifact checked against it, the export.
    model = load_base_model(cfg)
    artifact = load_artifact(path, ARTIFACT_STAGE, expect=model_metadata(model))
    check_weights(artifact, model)
    if not has_unet_weights(artifact.tensors):
        raise UserInputError(f"{path} holds no fine-tuned UNet tensors: re-run the fine-tune")
    folder = export_finetuned_unet(
        model.unet, artifact.tensors, artifact.metadata, request.out, request.dtype
    )
    log.info("wrote %s (UNet2DConditionModel.from_pretrained(%r) loads it)", folder, str(folder))
    return folder


def main(argv: list[str] | None = None) -> None:
    from editing_app.cli import fail, run_cli

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return
    try:
        request = parse_arguments(argv)
    except UserInputError as err:
        fail(str(err))
    run_cli(export_unet, request)


if __name__ == "__main__":
    main()
