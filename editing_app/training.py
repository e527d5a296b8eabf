"""Building and running one training stage: what train.py and evaluate.py share.

A stage config (`configs/stage/*.yaml`) names its LightningModule in `_target_`; every other key
is a constructor argument. `run_stage` seeds, builds the module, its datamodule and a Trainer with
the export, timing, checkpoint, preview and progress-bar callbacks, fits, and returns the artifact
written.
Lightning is imported only when a stage is built.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from editing.errors import UserInputError
from editing.io.atomic import remove_partial_files
from editing.io.checkpoints import load_checkpoint
from editing.io.edit_inputs import Inputs
from editing_app.cuda_check import use_torch_cuda_check

log = logging.getLogger(__name__)


def stage_configs(stage_cfg: DictConfig) -> list[DictConfig]:
    """The stage(s) to run: a single stage config, or the sub-configs a composite names."""
    if "sequence" in stage_cfg:
        return [stage_cfg[key] for key in stage_cfg.sequence]
    return [stage_cfg]


def check_stage_model(stages: list[DictConfig], model) -> None:
    """Refuse, in one line, training stages that do not run on an SDXL model: those whose module
    does not say `supports_sdxl` (Imagic's embedding and fine-tune stages and the null-text stage
    do: their embeddings carry SDXL's pooled part)."""
    if model is None or getattr(model, "conditioning_kind", "text") != "sdxl":
        return
    targets = [str(s.get("_target_", "?")) for s in stages]
    refused = [
        t.rsplit(".", 1)[-1]
        for t in targets
        if not getattr(hydra.utils.get_class(t), "supports_sdxl", False)
    ]
    if refused:
        raise UserInputError(
            f"train.py stages ({', '.join(refused)}) do not run on SDXL yet (base model "
            f"{model.name!r}); on SDXL train stage=imagic or stage=null_text, or edit without "
            f"training: edit.py method=direct_inversion or method=blended_latent"
        )


def build_module(stage_cfg: DictConfig, model, inputs):
    """The stage's LightningModule: `_target_` called with every other key (but `datamodule`)."""
    kwargs = OmegaConf.to_container(stage_cfg, resolve=True)
    cls = hydra.utils.get_class(kwargs.pop("_target_"))
    kwargs.pop("datamodule", None)
    try:
        return cls(model=model, inputs=inputs, **kwargs)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise UserInputError(
                f"{err} (a stage.* setting that {cls.__name__} does not take)"
            ) from None
        raise


def build_datamodule(stage_cfg: DictConfig, module, model, inputs):
    from datamodules.single_image import SingleImageDataModule

    if stage_cfg and stage_cfg.get("datamodule") is not None:
        return hydra.utils.instantiate(stage_cfg.datamodule)
    return SingleImageDataModule(
        image=inputs.image,
        resolution=model.resolution,
        noise_shape=model.sample_shape(inputs.image.size if inputs.image else None),
        num_train_timesteps=model.num_train_timesteps,
        batch_size=module.batch_size,
        seed=inputs.seed,
        num_steps=module.num_steps,
    )


def latest_checkpoint(folder: Path) -> Path:
    """`folder/last.ckpt`, or the newest `last-vN.ckpt` beside it: Lightning writes those when a
    resumed run's checkpoint callback differs from the one that wrote last.ckpt (another
    `callbacks.checkpoint_every_n_steps`), and a later resume must continue from the newest."""
    candidates = sorted(folder.glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else folder / "last.ckpt"


def _is_first_process() -> bool:
    """Rank zero of a (possibly) distributed launch, judged before the Trainer exists."""
    return all(int(os.environ.get(k, "0") or 0) == 0 for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def remove_stage_partials(output_dir: Path, stage: str) -> None:
    """Remove what killed writes of `stage` left: `.<stage>.safetensors.*.tmp` in output_dir,
    temporary checkpoint files in `checkpoints/<stage>` and temporary previews in `previews`."""
    removed = remove_partial_files(output_dir, f"{stage}.safetensors")
    removed += remove_partial_files(output_dir / "checkpoints" / stage)
    removed += remove_partial_files(output_dir / "previews")
    for p in removed:
        log.info("removed %s, left by an interrupted write", p)


CORRUPT_CHECKPOINT_FIX = "delete it or run with resume=false"


def check_shared_model_trainer(
    trainer: DictConfig, devices_refusal: str, precision_refusal: str
) -> None:
    """Refuse a trainer that would not leave a base model shared with later work as it was: more
    than one device or a strategy (`devices_refusal`), or `*-true` half precision, which converts
    the whole model (`precision_refusal`, formatted with `precision`)."""
    devices = trainer.get("devices", 1)
    one = devices == 1 or (OmegaConf.is_list(devices) and len(devices) == 1)
    if not one or str(trainer.get("strategy", "auto")) != "auto":
        raise UserInputError(devices_refusal)
    precision = str(trainer.get("precision", "32-true"))
    if precision.endswith("-true") and precision not in ("32-true", "64-true"):
        raise UserInputError(precision_refusal.format(precision=precision))


def build_trainer(
    cfg: DictConfig, stage: str, max_steps: int, output_dir: Path, extra_callbacks: Sequence = ()
):
    """A Lightning Trainer for one stage, with export, timing, checkpoint and preview callbacks,
    (with `trainer.enable_progress_bar`) a bar counting the stage's steps out of their total,
    (with `offload_frozen`) the frozen text encoder and VAE on the CPU during the fit, and the
    caller's `extra_callbacks` (the web app's progress and cancel)."""
    from callbacks.atomic_checkpoint import AtomicCheckpointIO
    from callbacks.budget_checkpoint import BudgetedCheckpoint
    from callbacks.export import ArtifactExport
    from callbacks.progress import StageProgressBar
    from callbacks.timing import StepTimer

    export = ArtifactExport(output_dir)
    timer = StepTimer()
    # The timer first: its fit time ends before the artifact is written.
    callbacks = [timer, export, *extra_callbacks]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(StageProgressBar())
    if cfg.get("offload_frozen", False):
        from callbacks.offload_frozen import OffloadFrozen

        callbacks.append(OffloadFrozen())
    every = int(cfg.callbacks.checkpoint_every_n_steps)
    if every > 0:
        callbacks.append(
            BudgetedCheckpoint(
                time_share=cfg.callbacks.get("checkpoint_time_share"),
                dirpath=output_dir / "checkpoints" / stage,
                filename="step{step}",
                save_last=True,
                save_top_k=0,
                every_n_train_steps=every,
            )
        )
    if cfg.callbacks.get("preview") is not None:
        callbacks.append(hydra.utils.instantiate(cfg.callbacks.preview))
    logger = False
    if cfg.get("logger") is not None:
        logger = hydra.utils.instantiate(cfg.logger, save_dir=str(output_dir / "logs"), name=stage)
    if max_steps < 0 < int(cfg.trainer.max_steps):
        raise UserInputError(
            f"trainer.max_steps counts optimizer steps, which stage={stage} takes several of per "
            f"timestep: shorten it with its own settings (e.g. stage.num_inference_steps=4)"
        )
    max_steps = int(cfg.trainer.max_steps) if int(cfg.trainer.max_steps) > 0 else max_steps
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        max_steps=max_steps,
        enable_checkpointing=every > 0,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(output_dir),
        plugins=[AtomicCheckpointIO()],
    )
    use_torch_cuda_check(trainer)  # not NVML's device count at every optimiser step
    return trainer, export, timer


@dataclass
class StageRun:
    """What one fitted stage produced: its name, artifact path, step timing summary (rank 0)."""

    stage: str
    artifact: Path
    timing: dict
    is_global_zero: bool


def run_stage(
    cfg: DictConfig,
    stage_cfg: DictConfig,
    model,
    inputs: Inputs,
    output_dir: Path,
    resume: bool = False,
    extra_callbacks: Sequence = (),
) -> StageRun:
    """Seed, build and fit one stage; the export callback writes its artifact into output_dir.

    With `resume`, the fit continues from the newest `output_dir/checkpoints/<stage>/last*.ckpt`
    (a missing checkpoint starts from scratch, logged; an unreadable one is refused, naming it).
    A checkpoint at the stage's final step writes the artifact from the checkpoint's state.
    Temporary files that killed writes of this stage left are removed first. A fit that fails
    before its first optimisation step removes the log folder it created. `extra_callbacks` join
    the trainer's own (`build_trainer`).
    """
    import lightning.pytorch as pl

    # 1. The stage module (validates its own inputs, reads earlier artifacts), its data, trainer.
    pl.seed_everything(int(inputs.seed), verbose=False)
    module = build_module(stage_cfg, model, inputs)
    if _is_first_process():
        remove_stage_partials(output_dir, module.stage)
    datamodule = build_datamodule(stage_cfg, module, model, inputs)
    trainer, export, timer = build_trainer(
        cfg, module.stage, module.trainer_max_steps, output_dir, extra_callbacks
    )
    ckpt_path = None
    if resume:
        ckpt = latest_checkpoint(output_dir / "checkpoints" / module.stage)
        ckpt_path = str(ckpt) if ckpt.is_file() else None
        if ckpt_path is None:
            log.info(
                "resume=true but %s does not exist: starting %s from scratch", ckpt, module.stage
            )
        else:
            load_checkpoint(ckpt, fix=CORRUPT_CHECKPOINT_FIX)  # refuse a truncated file up front
    # 2. Optimise; the export callback writes the artifact at the end.
    log_dir = _new_log_dir(trainer)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except BaseException:
        if not timer.times and log_dir is not None:
            _remove_log_dir(log_dir, output_dir)
        raise
    if not trainer.is_global_zero:
        return StageRun(module.stage, module.artifact_path(output_dir), {}, False)
    if export.path is None and _restored_at_end(trainer):
        # Lightning skips the fit loop, and with it on_train_end, when the restored checkpoint is
        # already at max_steps: export the restored state here. A sharded (FSDP) module's
        # parameters are shards; its checkpoint holds the full state.
        from lightning.pytorch.strategies import FSDPStrategy

        log.info("%s is at its final step: writing the artifact from it", ckpt_path)
        full_state = None
        if isinstance(trainer.strategy, FSDPStrategy):
            full_state = load_checkpoint(ckpt_path, fix=CORRUPT_CHECKPOINT_FIX)["state_dict"]
        export.path = module.export(output_dir, full_state)
        log.info("wrote %s", export.path)
    if export.path is None:
        raise RuntimeError(f"stage {module.stage} ended without writing its artifact")
    return StageRun(module.stage, export.path, timer.summary(), True)


def _restored_at_end(trainer) -> bool:
    from lightning.pytorch.trainer.states import TrainerStatus

    max_steps = trainer.max_steps
    return (
        trainer.state.status == TrainerStatus.FINISHED
        and max_steps > 0
        and trainer.global_step >= max_steps
    )


def _new_log_dir(trainer) -> Path | None:
    """The log folder this fit will create (None when it exists already or there is no logger)."""
    logger = trainer.logger
    if logger is None or getattr(logger, "log_dir", None) is None:
        return None
    path = Path(logger.log_dir)
    return None if path.exists() else path


def _remove_log_dir(log_dir: Path, output_dir: Path) -> None:
    """Remove a failed fit's log folder and the parents it leaves empty, up to output_dir."""
    shutil.rmtree(log_dir, ignore_errors=True)
    parent = log_dir.parent
    while parent != output_dir and output_dir in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
    log.info("removed %s: the stage failed before its first step", log_dir)
