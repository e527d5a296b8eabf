"""Per-image optimisation stages -> safetensors artifacts.

    python train.py stage=imagic_embed    base_model=B image=IMG target_prompt=T output_dir=D
    python train.py stage=imagic_finetune base_model=B image=IMG target_prompt=T output_dir=D
    python train.py stage=imagic          ...   # both, in order
    python train.py stage=null_text       base_model=B image=IMG source_prompt=S output_dir=D

Each stage writes D/<stage>.safetensors; `edit.py` consumes them. `train(cfg)` is importable.
Resume an interrupted stage with `resume=true` (from D/checkpoints/<stage>/last.ckpt). In a
multirun (`-m`) job N writes D/N.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from editing_app.cli import holds_output_dir, per_job_output_dir, precheck, run_cli
from editing_app.config_inputs import inputs_from_config
from editing_app.configs import CONFIG_DIR
from editing_app.cpu_threads import set_cpu_threads
from editing_app.registry import edit_command
from editing_app.runtime import load_base_model
from editing_app.training import check_stage_model, run_stage, stage_configs
from editing_app.validation import validate_config

log = logging.getLogger("train")


@holds_output_dir("train.py")  # output_dir checked writable and locked for the whole run
def train(cfg: DictConfig) -> list[Path]:
    """Run the configured stage(s); returns the artifact paths written."""
    import torch

    stages = stage_configs(cfg.stage)
    output_dir = Path(cfg.output_dir)
    # 1. Everything the user gave is checked before anything is written.
    validate_config(cfg)
    if cfg.get("image"):
        from editing.io.images import check_image_file

        check_image_file(cfg.image)
    model = load_base_model(cfg.base_model) if cfg.get("base_model") is not None else None
    check_stage_model(stages, model)
    if model is not None and cfg.get("compile", False):
        model.set_compile(True, cfg.get("compile_backend", "inductor"))
    inputs = inputs_from_config(cfg, model)
    if inputs.checkpoint_dir is None:
        inputs.checkpoint_dir = inputs.output_dir
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    if not torch.cuda.is_available() or cfg.trainer.get("accelerator") == "cpu":
        set_cpu_threads(cfg.get("cpu_threads", "auto"))

    paths = []
    for stage_cfg in stages:
        # 2. Build and fit the stage; its export callback writes the artifact.
        run = run_stage(cfg, stage_cfg, model, inputs, output_dir, resume=bool(cfg.resume))
        if run.is_global_zero:
            s = run.timing
            log.info(
                "%s done: %d steps in %.2f s (%.4f s/step, %.2f s CPU), wrote %s",
                run.stage,
                s["steps"],
                s["total_seconds"],
                s["seconds_per_step"],
                s["cpu_seconds"],
                run.artifact,
            )
        paths.append(run.artifact)
    # 3. What uses the artifacts: the edit command (base_model as given on the command line).
    if paths:
        command = edit_command(paths[-1].stem, _base_model_choice(), output_dir)
        if command:
            log.info("edit with: %s", command)
    return paths


def _base_model_choice() -> str:
    """The base_model group choice of this run (`demo`, `sd15`, ...), from Hydra when it runs."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return str(HydraConfig.get().runtime.choices.get("base_model", "demo"))
    except ValueError:  # train() called outside a Hydra app
        return "B"


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base=None)
def hydra_main(cfg: DictConfig) -> None:
    run_cli(train, per_job_output_dir(cfg))


def main() -> None:
    """The `train` command: the command line checked in one line, then the Hydra app."""
    precheck(CONFIG_DIR, "train", sys.argv[1:])
    hydra_main()
