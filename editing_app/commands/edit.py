"""Edit an image with a base model and (for some methods) the artifacts of train.py.

    python edit.py method=imagic           base_model=B checkpoint_dir=D output_dir=O method.eta=0.7
    python edit.py method=null_text_p2p    base_model=B checkpoint_dir=D target_prompt=T output_dir=O
    python edit.py method=direct_inversion base_model=B image=IMG target_prompt=T output_dir=O
    python edit.py method=blended          base_model=B image=IMG mask=MASK target_prompt=T output_dir=O

Writes O/edit.png (the first/best result), O/samples/ (all results, when several), O/grid.png
(input beside the results, labelled) and O/config.yaml. Never imports Lightning. O is checked
writable and locked before any work (one run per folder); in a multirun (`-m`) job N writes O/N.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from editing.editors.apply import apply_editor
from editing.models.cascade import SuperResolutionSettings
from editing_app.cli import holds_output_dir, per_job_output_dir, precheck, run_cli
from editing_app.config_inputs import inputs_from_config
from editing_app.configs import CONFIG_DIR
from editing_app.cpu_threads import set_cpu_threads
from editing_app.runtime import load_base_model, precision_context, resolve_device
from editing_app.validation import validate_config

log = logging.getLogger("edit")


@holds_output_dir("edit.py")
def edit(cfg: DictConfig) -> Path:
    """Run the configured editing method; returns the path of edit.png."""
    import torch

    from editing.io.full_size import full_size_image
    from editing.io.images import check_image_file
    from editing.io.outputs import write_outputs

    # 1. Cheap checks first: files, method settings, device. Only step 4 writes (the output folder
    #    and its lock are removed when a check refuses the run).
    validate_config(cfg)
    output_dir = Path(cfg.output_dir)
    for key in ("image", "mask"):
        if cfg.get(key):
            check_image_file(cfg[key], key)
    editor = hydra.utils.instantiate(cfg.method)
    if cfg.get("mask") and not getattr(editor, "uses_mask", False):
        log.warning(
            "mask=%s has no effect: method=%s does not edit inside a mask", cfg.mask, editor.name
        )
    device = resolve_device(cfg.device)
    context = precision_context(cfg.precision, device)
    if device.type == "cpu":
        set_cpu_threads(cfg.get("cpu_threads", "auto"))

    # 2. The base model and the user's inputs at its resolution.
    torch.manual_seed(int(cfg.seed))
    model = load_base_model(cfg.base_model).to(device)
    if cfg.get("compile", False):
        model.set_compile(True, cfg.get("compile_backend", "inductor"))
    inputs = inputs_from_config(cfg, model)

    # 3. The edit.
    with context:
        results = apply_editor(editor, model, inputs, SuperResolutionSettings(**cfg.sr))

    # 4. Outputs per the command-line contract.
    metadata = {"base_model": model.identity.name, "method": cfg.method.get("name", "")}
    full = full_size_image(results[0].image, inputs, editor) if cfg.output_full_size else None
    path = write_outputs(
        output_dir,
        results,
        grid_input(editor, inputs),
        OmegaConf.to_yaml(cfg, resolve=True),
        metadata,
        full,
    )
    log.info(
        "wrote %s (%d result%s) and %s",
        path,
        len(results),
        "s" if len(results) > 1 else "",
        output_dir / "grid.png",
    )
    return path


def grid_input(editor, inputs) -> Tensor | None:
    """The input shown first in grid.png: the image given, else the one kept in the artifact the
    editor reads from checkpoint_dir (an edit from a trained artifact needs no image=)."""
    from editing.io.artifacts import stored_input_image

    if inputs.image is not None:
        return inputs.image.pixels[0]
    if inputs.checkpoint_dir is None:
        return None
    for stage in getattr(editor, "artifacts", ()):
        image = stored_input_image(Path(inputs.checkpoint_dir) / f"{stage}.safetensors")
        if image is not None:
            return image
    return None


@hydra.main(config_path=str(CONFIG_DIR), config_name="edit", version_base=None)
def hydra_main(cfg: DictConfig) -> None:
    run_cli(edit, per_job_output_dir(cfg))


def main() -> None:
    """The `edit` command: the command line checked in one line, then the Hydra app."""
    precheck(CONFIG_DIR, "edit", sys.argv[1:])
    hydra_main()
