"""Which training stage a method needs before it edits a case, and running it on a shared model.

`configs/evaluate.yaml` maps method names to stages, with the method settings that make the stage
necessary::

    train_stages:
      imagic: {stage: imagic}                                      # embed + fine-tune, per case
      null_text_p2p: {stage: null_text, when: {inversion: null_text}}

`train_overrides` are Hydra overrides of the stage exactly as `train.py` takes them
(`stage.num_inner_steps=5`, `stage.embed.num_steps=100`); they are composed with the real
`configs/train.yaml`, so a misspelt key fails before anything runs. Trainer settings are the
top-level `trainer.*` of the evaluation config.

Stages run through the builders train.py uses (`editing_app.training.run_stage`)
with one already-loaded base model; the stages never modify it (Imagic fine-tunes a copy of the
UNet). Lightning is imported only when a stage runs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from editing.errors import UserInputError
from editing.io.edit_inputs import Inputs
from editing_app.configs import compose_config
from editing_app.training import check_shared_model_trainer

log = logging.getLogger(__name__)

__all__ = [
    "compose_stage",
    "overrides_record",
    "plan_record",
    "run_stages",
    "stage_plan",
    "trainer_follows_device",
]


def overrides_record(overrides: list[str]) -> dict[str, Any]:
    """`["stage.num_inner_steps=5"]` -> `{"num_inner_steps": 5}` (values parsed as YAML), the
    form recorded in the result rows as `train.<key>` columns."""
    record = {}
    for item in overrides:
        key, _, value = str(item).partition("=")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        record[key.removeprefix("stage.").lstrip("+~")] = parsed
    return record


def compose_stage(name: str, overrides: list[str]) -> DictConfig:
    """The `stage` node of `configs/train.yaml` composed with `stage=<name>` and `overrides`."""
    overrides = [str(o) for o in overrides]
    for item in overrides:
        if not item.lstrip("+~").startswith("stage.") or "=" not in item:
            raise UserInputError(
                f"train_overrides entry {item!r} must set a stage setting, e.g. "
                "'stage.num_inner_steps=5'; trainer.* settings go at the top level"
            )
    args = [f"stage={name}", *overrides]
    try:
        return compose_config("train", args).stage
    except Exception as err:  # Hydra's composition errors
        text = " ".join(str(err).split())[:300]
        raise UserInputError(f"train_overrides {overrides} for stage={name}: {text}") from None


def trainer_follows_device(cfg: DictConfig, device: torch.device) -> None:
    """Stages train where the edits run: `device=cpu` -> a CPU trainer, `device=cuda:N` -> GPU N
    (when the trainer is left on its automatic single-device defaults)."""
    trainer = cfg.trainer
    if trainer.get("accelerator") != "auto" or trainer.get("devices") != 1:
        return
    if device.type == "cpu":
        trainer.accelerator = "cpu"
    elif device.type == "cuda" and device.index is not None:
        trainer.accelerator = "gpu"
        trainer.devices = [device.index]


def stage_plan(cfg: DictConfig) -> DictConfig | None:
    """The stage config the configured method needs per case, or None."""
    from editing_app.registry import required_stage

    stage = required_stage(cfg.method, cfg.get("train_stages") or {})
    if stage is None:
        return None
    check_shared_model_trainer(
        cfg.trainer,
        "evaluate.py trains each case on one device (trainer.devices=1, trainer.strategy=auto); "
        "to use several GPUs, run shards in parallel (docs/evaluation.md)",
        "trainer.precision={precision} would convert the base model shared by every case; "
        "use bf16-mixed or 16-mixed",
    )
    return compose_stage(stage, list(cfg.get("train_overrides") or []))


def run_stages(cfg: DictConfig, stage_cfg: DictConfig, model, inputs: Inputs) -> list[Path]:
    """Train every stage of `stage_cfg` for one case; artifacts go to `inputs.checkpoint_dir`.

    Returns the artifact paths. The shared `model` is left in eval mode (Lightning moves it to
    CPU at the end of a fit; the caller moves it back to its device).
    """
    from editing_app.training import run_stage, stage_configs

    out = Path(inputs.checkpoint_dir)
    paths = []
    for sub in stage_configs(stage_cfg):
        start = time.perf_counter()
        run = run_stage(cfg, sub, model, inputs, out)
        log.info("  %s: %.1f s -> %s", run.stage, time.perf_counter() - start, run.artifact)
        paths.append(run.artifact)
    model.eval()
    return paths


def plan_record(stage_cfg: DictConfig | None) -> dict[str, Any] | None:
    """The resolved stage config as plain data (part of a case's configuration fingerprint)."""
    return None if stage_cfg is None else OmegaConf.to_container(stage_cfg, resolve=True)
