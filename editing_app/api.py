"""A small Python API for notebooks: load a base model once, train a stage once, edit many times.

    from editing_app import api

    model = api.load_model("demo")                       # configs/base_model/demo.yaml
    out = api.edit(model, "direct_inversion", "photo.png",
                   source_prompt="a cat", target_prompt="a dog", noise_lambda=[0.3, 0.5])
    out.image, out.images, out.params                    # PIL images (best/first first), settings
    art = api.train(model, "null_text", "photo.png", source_prompt="a cat")
    api.edit(model, "null_text_p2p", "photo.png", target_prompt="a dog", artifact=art)

Everything runs through what train.py and edit.py run, with the same defaults and checks:
- a model is `configs/base_model/<name>.yaml` composed with its settings and loaded by
  `editing_app.runtime.load_base_model`; a folder or hub id loads as `base_model=sd15
  base_model.path=...` with the name and resolution taken from the checkpoint;
- an edit composes `configs/edit.yaml` with `method=<name>`, merges the keyword settings into
  `method.*` (an unknown name is refused), validates the whole configuration
  (`editing_app.validation.validate_config`) and instantiates the editor, whose dataclass checks
  its settings, before any image is read; then `apply_editor` (super-resolution on a cascade);
- a stage composes `configs/train.yaml` with `stage=<name>` and runs through
  `editing_app.training.run_stage` on the already-loaded model (no logger, no checkpoints, no
  progress bar; the trainer on the model's device); its artifacts are read back once and kept in
  memory, so later edits use them without reading the files again.

Images are PIL images or paths, preprocessed as on the command line (`editing.io.images`: RGB,
shorter side resized to the model resolution, centre crop); results are PIL images at the model's
resolution (the SR resolution on a cascade). A bad input raises `editing.errors.UserInputError`
with the same one-line message the command line prints, before anything is written. Edits write
nothing unless asked (`EditOutput.save`); `train` writes its artifacts into a folder (`.folder`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from PIL import Image

from editing.editors.apply import apply_editor
from editing.errors import UserInputError
from editing.io.artifacts import Artifact, load_artifact, read_metadata
from editing.io.edit_inputs import Inputs
from editing.io.full_size import full_size_image
from editing.io.geometry import DEFAULT_FIT, SizeRule
from editing.io.images import ImageSource, fit_mask, load_image, load_mask_full, to_pil
from editing.io.outputs import EditResult, make_grid, write_outputs
from editing.models.cascade import SuperResolutionSettings
from editing.models.diffusion_model import DiffusionModel
from editing_app.configs import CONFIG_DIR, compose_config
from editing_app.registry import (
    editor_class,
    instantiate_editor,
    method_editing_from,
    method_names,
    stage_names,
)
from editing_app.runtime import load_base_model, precision_context, resolve_device
from editing_app.training import check_shared_model_trainer
from editing_app.validation import validate_config

log = logging.getLogger(__name__)

__all__ = [
    "EditOutput",
    "Model",
    "TrainedArtifacts",
    "UserInputError",
    "base_model_names",
    "edit",
    "load_artifacts",
    "load_model",
    "method_names",
    "stage_names",
    "train",
]

PATH_MODEL = "sd15"
"""The base_model config a folder, single checkpoint file or hub id loads with (name and
resolution from the checkpoint instead of sd15's)."""

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


# --------------------------------------------------------------------------------------- models
@dataclass
class Model:
    """A loaded base model and where it came from.

    Attributes:
        diffusion: the `DiffusionModel` every method runs on.
        name: the `configs/base_model/` choice it was loaded with (`demo`, `sd15`, ...).
        settings: its resolved `base_model.*` settings (path, dtype, ...).
        device: where it runs; edits and stages run there.
    """

    diffusion: DiffusionModel
    name: str
    settings: dict[str, Any]
    device: torch.device

    @property
    def resolution(self) -> int:
        """The image side (pixels) inputs are resized to and base-stage results have."""
        return int(self.diffusion.resolution)

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, identity={self.diffusion.identity.name!r}, "
            f"resolution={self.resolution}, device={str(self.device)!r})"
        )


def base_model_names() -> list[str]:
    """The base models `load_model` knows by name: the stems of configs/base_model/*.yaml."""
    return sorted(p.stem for p in (CONFIG_DIR / "base_model").glob("*.yaml") if p.stem != "none")


def load_model(
    name_or_path: str | Path = "demo",
    *,
    device: str | torch.device = "auto",
    dtype: str | None = None,
    **settings: Any,
) -> Model:
    """Load a base model, as `base_model=<name>` does on the command line.

    Args:
        name_or_path: a name of `base_model_names()` (`demo`, `sd15`, `deepfloyd_if`, ...), or a
            diffusers folder, a single `.safetensors`/`.ckpt` file (then `config=` names the folder
            or hub id with its component configs) or a hub id `owner/name` (from the local hub
            cache); those load with `configs/base_model/sd15.yaml`'s defaults, the name and the
            resolution taken from the checkpoint.
        device: `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
        dtype: the weights' dtype (`float32`, `float16`, `bfloat16`) for models whose config has
            a `dtype` setting; None keeps the config's.
        **settings: further `base_model.*` settings of that config (`path`, `sr_path`,
            `resolution`, `variant`, ...).

    Raises:
        UserInputError: an unknown name or setting, a bad device, a missing model.
    """
    device = resolve_device(str(device))
    name = str(name_or_path)
    overrides: dict[str, Any] = {}
    if name in base_model_names():
        choice = name
    elif Path(name).exists() or _HUB_ID.fullmatch(name):
        choice, overrides = PATH_MODEL, {"path": name, "name": None, "resolution": None}
    else:
        raise UserInputError(
            f"unknown base model {name!r}: choose one of {', '.join(base_model_names())}, or give "
            "a diffusers folder, a checkpoint file or a hub id owner/name"
        )
    cfg = compose_config("edit", [f"base_model={choice}"])
    node = cfg.base_model
    if dtype is not None:
        if "dtype" not in node:
            raise UserInputError(
                f"base_model {choice} has no dtype setting (its weights load as saved): leave "
                "dtype=None"
            )
        overrides["dtype"] = str(dtype)
    _merge(node, {**overrides, **settings}, "base_model.")
    with _user_errors():
        model = load_base_model(node)
    model = model.to(device)
    return Model(
        diffusion=model,
        name=choice,
        settings=OmegaConf.to_container(node, resolve=True),
        device=device,
    )


# ------------------------------------------------------------------------------------ artifacts
@dataclass
class TrainedArtifacts:
    """What a training stage wrote, loaded once and kept in memory for any number of edits.

    Attributes:
        stage: the stage config that made them (`null_text`, `imagic`, `imagic_demo`, ...).
        folder: where the files are (`checkpoint_dir=` of edit.py for the same edits).
        artifacts: each `<stage>.safetensors` of the folder, loaded, by its stage name
            (`null_text`; `imagic_embed` and `imagic_finetune` for stage=imagic).
        method: the method that edits from them (`null_text_p2p`, `imagic`), or None.
    """

    stage: str
    folder: Path
    artifacts: dict[str, Artifact]
    method: str | None = None

    @property
    def paths(self) -> dict[Path, Artifact]:
        """The artifacts by file path, the form editors look them up in (`Inputs.artifacts`)."""
        return {artifact.path: artifact for artifact in self.artifacts.values()}

    def __getitem__(self, stage: str) -> Artifact:
        return self.artifacts[stage]

    def __repr__(self) -> str:
        return (
            f"TrainedArtifacts(stage={self.stage!r}, artifacts={sorted(self.artifacts)}, "
            f"method={self.method!r}, folder={str(self.folder)!r})"
        )


def load_artifacts(folder: str | Path) -> TrainedArtifacts:
    """Read every artifact of a train.py output folder (`D/<stage>.safetensors`) once, to edit
    from it many times (`edit(..., artifact=...)`). Each file is checked as edit.py checks it
    (format, NaN values); whether it fits the model, image and prompt is checked at each edit."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"no artifact folder at {folder}: give the output_dir of train.py")
    artifacts = {}
    for path in sorted(folder.glob("*.safetensors")):
        try:
            stage = read_metadata(path).get("stage", "")
        except Exception:  # an unreadable file is refused in one line below
            stage = path.stem
        artifacts[stage] = load_artifact(path, stage)
    if not artifacts:
        raise UserInputError(
            f"{folder} holds no .safetensors artifact: train a stage into it first"
        )
    methods = [method_editing_from(stage) for stage in artifacts]
    method = next((m for m in methods if m), None)
    return TrainedArtifacts("+".join(artifacts), folder, artifacts, method)


# ------------------------------------------------------------------------------------- training
def train(
    model: Model | DiffusionModel,
    stage: str,
    image: ImageSource | None = None,
    *,
    mask: ImageSource | None = None,
    source_prompt: str = "",
    target_prompt: str = "",
    seed: int = 0,
    image_fit: str = DEFAULT_FIT,
    output_dir: str | Path | None = None,
    trainer: Mapping[str, Any] | None = None,
    callbacks: Sequence[Any] = (),
    **stage_settings: Any,
) -> TrainedArtifacts:
    """Run a training stage once (`train.py stage=<stage>`) and keep its artifacts in memory.

    Args:
        model: from `load_model` (or a `DiffusionModel`); it is not modified (Imagic fine-tunes a
            copy of the UNet) and stays on its device.
        stage: a name of `stage_names()`: `null_text` (needs `source_prompt`), `imagic`,
            `imagic_demo` (sized for the demo model), `imagic_lora`, ... (need `target_prompt`).
        image: the photograph, a PIL image or a path; mask: an optional mask for it.
        seed: the stage's seed (`seed=`); image_fit: as on the command line (`image_fit=`).
        output_dir: where the artifacts are written (`D/<stage>.safetensors`, usable by edit.py
            with checkpoint_dir=D); None: a new temporary folder, kept (see `.folder`).
        trainer: `trainer.*` settings over configs/trainer/default.yaml (the trainer follows the
            model's device; progress bar off). One device only: use train.py for DDP/FSDP.
        callbacks: Lightning callbacks added to each stage's trainer (progress reports, a cancel
            that raises out of the fit: the stage then writes no artifact).
        **stage_settings: `stage.*` settings (`num_inference_steps=10`, `num_inner_steps=5`; for
            the two-part Imagic stages `embed={"num_steps": 100}`, `finetune={...}`).

    Returns:
        The artifacts, loaded; pass them to `edit(..., artifact=...)`.

    Raises:
        UserInputError: an unknown stage or setting, a bad value or input; nothing is written.
    """
    from editing_app.evaluation.stages import trainer_follows_device
    from editing_app.training import run_stage, stage_configs

    diffusion, device = _unwrap(model)
    if stage not in stage_names():
        raise UserInputError(f"unknown stage {stage!r}: choose one of {', '.join(stage_names())}")
    # 1. The configuration, checked as train.py checks it, and the inputs: nothing written yet.
    cfg = compose_config(
        "train", [f"stage={stage}", "trainer=default", "callbacks=none", "logger=none"]
    )
    cfg.trainer.enable_progress_bar = False
    _merge(cfg.trainer, dict(trainer or {}), "trainer.")
    _merge(cfg.stage, stage_settings, "stage.")
    _set_top(cfg, source_prompt=source_prompt, target_prompt=target_prompt, seed=seed)
    cfg.output_dir = str(output_dir) if output_dir is not None else "<temporary folder>"
    validate_config(cfg)
    _check_single_device(cfg.trainer)
    trainer_follows_device(cfg, device)
    inputs = _inputs(diffusion, image, mask, source_prompt, target_prompt, seed, image_fit)
    # 2. The stages, in order, into the output folder (held as train.py holds it).
    from editing.io.output_dir import claim_output_dir

    temporary = output_dir is None
    folder = Path(tempfile.mkdtemp(prefix=f"editing-{stage}-")) if temporary else Path(output_dir)
    inputs.output_dir = inputs.checkpoint_dir = folder
    cfg.output_dir = str(folder)
    artifacts: dict[str, Artifact] = {}
    modes = {module: module.training for module in diffusion.modules()}
    try:
        with claim_output_dir(folder, "editing_app.api.train"), _quiet_training():
            for stage_cfg in stage_configs(cfg.stage):
                with _user_errors():
                    run = run_stage(
                        cfg, stage_cfg, diffusion, inputs, folder, extra_callbacks=callbacks
                    )
                artifacts[run.stage] = load_artifact(run.artifact, run.stage)
    except BaseException:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        # Lightning moves the module to the CPU at the end of a fit and sets train/eval modes.
        diffusion.to(device)
        for module, training in modes.items():
            module.train(training)
    method = method_editing_from(next(reversed(artifacts)))
    return TrainedArtifacts(str(cfg.stage.get("name", stage)), folder, artifacts, method)


def _check_single_device(trainer: DictConfig) -> None:
    check_shared_model_trainer(
        trainer,
        "api.train runs on the model's one device (trainer.devices=1, trainer.strategy=auto): "
        "use train.py for DDP or FSDP",
        "trainer.precision={precision} would convert the loaded base model, which later edits "
        "share: use bf16-mixed or 16-mixed",
    )


# -------------------------------------------------------------------------------------- editing
@dataclass
class EditOutput:
    """The results of one edit, best or first first.

    Attributes:
        images: the results as PIL images (edit.py's edit.png is `images[0]`).
        params: per image, the parameters edit.py writes into its PNG (base model, method,
            prompt, seed, the swept value, ...).
        labels: per image, its short label ("lambda=0.5 w=3", "reconstruction", ...).
        scores: per image, its ranking score where the method ranks (lower is better), else None.
        method: the method's name.
        input: the preprocessed input image, or None.
        config: the resolved edit configuration (edit.py's config.yaml).
        full_size: the first result at the photo's own size (edit.py's edit_full.png), or None
            without a photo.
    """

    images: list[Image.Image]
    params: list[dict[str, Any]]
    labels: list[str]
    scores: list[float | None]
    method: str
    input: Image.Image | None = None
    config: str = ""
    results: list[EditResult] = field(default_factory=list, repr=False)
    full_size: Image.Image | None = None

    @property
    def image(self) -> Image.Image:
        """The first (best) result."""
        return self.images[0]

    def grid(self, cell: int = 160) -> Image.Image:
        """The input beside every result, labelled (edit.py's grid.png)."""
        tiles = ([self.input] if self.input is not None else []) + self.images
        labels = (["input"] if self.input is not None else []) + self.labels
        return make_grid(tiles, labels, cell=cell)

    def save(self, output_dir: str | Path) -> Path:
        """Write edit.png, edit_full.png, samples/, grid.png and config.yaml as edit.py does;
        returns edit.png."""
        from editing.io.output_dir import claim_output_dir

        pixels = None
        if self.input is not None:
            pixels = torch.from_numpy(_array(self.input)).permute(2, 0, 1).float() / 127.5 - 1
        metadata = {k: self.params[0][k] for k in ("base_model", "method") if k in self.params[0]}
        with claim_output_dir(output_dir, "editing_app.api"):
            return write_outputs(
                output_dir, self.results, pixels, self.config, metadata, self.full_size
            )

    def __repr__(self) -> str:
        size = "x".join(map(str, self.images[0].size)) if self.images else "-"
        return f"EditOutput(method={self.method!r}, {len(self.images)} image(s) of {size}, labels={self.labels})"


def edit(
    model: Model | DiffusionModel,
    method: str,
    image: ImageSource | None = None,
    *,
    mask: ImageSource | None = None,
    source_prompt: str = "",
    target_prompt: str = "",
    seed: int = 0,
    image_fit: str = DEFAULT_FIT,
    artifact: TrainedArtifacts | None = None,
    checkpoint_dir: str | Path | None = None,
    precision: str = "32",
    clip: str | None = None,
    sr: Mapping[str, Any] | None = None,
    **settings: Any,
) -> EditOutput:
    """Edit an image with one method (`edit.py method=<method>`).

    Nothing is written (`EditOutput.save` writes edit.py's files), except Direct Inversion's
    inversion cache when `checkpoint_dir` is given, as on the command line.

    Args:
        model: from `load_model` (or a `DiffusionModel`); the edit runs on its device.
        method: a name of `method_names()`: `direct_inversion`, `null_text_p2p`, `imagic`,
            `blended`, `blended_latent`.
        image: the photograph, a PIL image or a path (Imagic and null-text + P2P can edit from
            their artifact alone); mask: a PIL image or path of the image's size (white = edit),
            for the Blended methods.
        source_prompt, target_prompt, seed, image_fit: as on the command line.
        artifact: what `train` (or `load_artifacts`) returned, for `null_text_p2p` and `imagic`:
            used from memory, checked against the model, image and prompt at every edit.
        checkpoint_dir: instead of `artifact`, edit.py's checkpoint_dir (artifacts read from the
            folder; Direct Inversion caches its inversion there).
        precision: `32`, `bf16-mixed` or `16-mixed` (autocast).
        clip: the CLIP of Blended Diffusion's guidance and ranking: `demo` (default), `none`, or
            an open_clip folder (`clip.path`).
        sr: `sr.*` settings for super-resolving results on a cascade (`num_inference_steps`,
            `guidance_scale`).
        **settings: the method's settings (`method.*`, defaults from configs/method/<method>.yaml),
            e.g. `noise_lambda=[0.3, 0.5]`, `num_inference_steps=20`, `blend_words="auto"`.

    Returns:
        The results, best or first first, as PIL images with their parameters.

    Raises:
        UserInputError: an unknown method or setting, a bad value, an unreadable image, a mask of
            another size, an artifact made for another model, image or prompt.
    """
    diffusion, device = _unwrap(model)
    if method not in method_names():
        raise UserInputError(
            f"unknown method {method!r}: choose one of {', '.join(method_names())}"
        )
    if artifact is not None and checkpoint_dir is not None:
        raise UserInputError("give artifact= or checkpoint_dir=, not both")
    # 1. The configuration, checked as edit.py checks it, and the editor (its own checks).
    overrides = [f"method={method}"]
    clip_path = None
    if clip is not None:
        if (CONFIG_DIR / "clip" / f"{clip}.yaml").is_file():
            overrides.append(f"clip={clip}")
        else:
            clip_path = str(clip)
    cfg = compose_config("edit", overrides)
    if clip_path is not None:
        cfg.clip.path = clip_path
    _merge(cfg.method, settings, "method.")
    _merge(cfg.sr, dict(sr or {}), "sr.")
    folder = artifact.folder if artifact is not None else checkpoint_dir
    _set_top(
        cfg,
        source_prompt=source_prompt,
        target_prompt=target_prompt,
        seed=seed,
        precision=precision,
        device=str(device),
        checkpoint_dir=None if folder is None else str(folder),
        image=image if isinstance(image, (str, Path)) else None,
        mask=mask if isinstance(mask, (str, Path)) else None,
    )
    cfg.output_dir = None  # nothing is written
    validate_config(cfg)
    editor = instantiate_editor(cfg.method)
    if artifact is not None:
        _check_artifact_method(artifact, method)
    if mask is not None and not getattr(editor, "uses_mask", False):
        log.warning("the mask has no effect: method=%s does not edit inside a mask", method)
    context = precision_context(cfg.precision, device)
    # 2. The inputs at the model's resolution, then the edit (edit.py's seeding and order).
    inputs = _inputs(diffusion, image, mask, source_prompt, target_prompt, seed, image_fit)
    inputs.checkpoint_dir = None if folder is None else Path(folder)
    if artifact is not None:
        inputs.artifacts = artifact.paths
    torch.manual_seed(int(seed))
    with context, _user_errors():
        results = apply_editor(editor, diffusion, inputs, SuperResolutionSettings(**cfg.sr))
    if not results:
        raise RuntimeError(f"method={method} returned no results")
    metadata = {"base_model": diffusion.identity.name, "method": cfg.method.get("name", "")}
    return EditOutput(
        images=[to_pil(r.image) for r in results],
        params=[{**metadata, **r.params} for r in results],
        labels=[r.label for r in results],
        scores=[r.score for r in results],
        method=method,
        input=to_pil(inputs.image.pixels) if inputs.image is not None else None,
        config=OmegaConf.to_yaml(cfg, resolve=True),
        results=results,
        full_size=full_size_image(results[0].image, inputs, editor),
    )


def _check_artifact_method(artifact: TrainedArtifacts, method: str) -> None:
    reads = set(getattr(editor_class(method), "artifacts", ()))
    if not reads & set(artifact.artifacts):
        use = f"; it is for method={artifact.method}" if artifact.method else ""
        raise UserInputError(
            f"method={method} does not edit from a {artifact.stage} artifact{use}"
            if reads
            else f"method={method} does not edit from a trained artifact: leave artifact=None"
        )


# -------------------------------------------------------------------------------------- helpers
def _unwrap(model: Model | DiffusionModel) -> tuple[DiffusionModel, torch.device]:
    if isinstance(model, Model):
        return model.diffusion, model.device
    if isinstance(model, DiffusionModel):
        return model, model.device
    raise UserInputError(
        f"model must come from api.load_model (or be a DiffusionModel), got {type(model).__name__}"
    )


def _inputs(
    model: DiffusionModel,
    image: ImageSource | None,
    mask: ImageSource | None,
    source_prompt: str,
    target_prompt: str,
    seed: int,
    image_fit: str = DEFAULT_FIT,
) -> Inputs:
    """`Inputs` as `inputs_from_config` builds them, from PIL images or paths."""
    rule = SizeRule.for_model(model, image_fit)
    loaded = load_image(image, rule) if image is not None else None
    mask_tensor = full_mask = None
    if mask is not None:
        if loaded is None:
            raise UserInputError("a mask was given without an image: a mask belongs to an image")
        full_mask = load_mask_full(mask, loaded)
        mask_tensor = fit_mask(full_mask, loaded)
    return Inputs(
        image=loaded,
        mask=mask_tensor,
        full_mask=full_mask,
        source_prompt=source_prompt or "",
        target_prompt=target_prompt or "",
        seed=int(seed),
    )


def _literal(value: Any) -> Any:
    """`value` with every `${` escaped, so OmegaConf keeps user text as written."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, Mapping):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_literal(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _merge(node: DictConfig, values: Mapping[str, Any], prefix: str) -> None:
    """Set `values` into the composed `node` as the command line's `prefix<key>=value` would;
    a key the config does not have is refused (the command line's "unknown setting"), a
    mapping given for a sub-config (`embed={...}` of stage=imagic) is merged into it."""
    for key, value in values.items():
        full = f"{prefix}{key}"
        if str(key).startswith("_") or key not in node:
            known = ", ".join(str(k) for k in node if not str(k).startswith("_"))
            raise UserInputError(f"unknown setting {full}: the settings here are {known}")
        if isinstance(value, Mapping) and isinstance(node[key], DictConfig):
            _merge(node[key], value, f"{full}.")
            continue
        try:
            node[key] = _literal(value)
        except OmegaConfBaseException as err:
            raise UserInputError(
                f"{full}={value!r} cannot be a setting ({str(err).splitlines()[0]}): give a "
                "number, text, true/false, a list or a dict"
            ) from None


def _set_top(cfg: DictConfig, **values: Any) -> None:
    """Top-level settings (prompts, seed, precision, ...), validated later with the rest."""
    for key, value in values.items():
        cfg[key] = _literal(value)


def _array(image: Image.Image):
    import numpy as np

    return np.asarray(image.convert("RGB")).copy()


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Hydra's wrapping of an error raised while instantiating removed from `UserInputError`s."""
    from hydra.errors import InstantiationException

    try:
        yield
    except InstantiationException as err:
        if isinstance(err.__cause__, UserInputError):
            raise err.__cause__ from None
        raise


@contextlib.contextmanager
def _quiet_training() -> Iterator[None]:
    """Lightning's INFO lines ("GPU available", ...) and its advice warnings off during a fit;
    the loggers' levels and the warning filters are restored afterwards."""
    from editing_app.cli import quiet_warnings

    names = ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        quiet_warnings()
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)
