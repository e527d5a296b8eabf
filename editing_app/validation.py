"""One validation pass over a composed train/edit/evaluate configuration, before any model loads.

Every setting of the stage, trainer, callbacks and top-level groups is checked here for its type,
range and choices, with the one validator style of `editing.editors.settings` (messages name the
full key: `stage.lr=-1 is outside the allowed range ...`). Method settings are checked by the
editor's own dataclass (`hydra.utils.instantiate(cfg.method)`, which entry points run first).
A bad value ends the run with one `error:` line (exit 2) before anything is loaded or written.

Rules are keyed by setting name: a name means the same thing in every stage (`num_steps`,
`lr`, `finetune_mode` ...). A stage setting without a rule is refused by its constructor only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from editing.editors import settings
from editing.errors import UserInputError
from editing.io.geometry import FITS
from editing.models.diffusion_model import PREDICTION_TYPES
from editing.models.loading import WEIGHT_DTYPES
from editing_app.cpu_threads import check_cpu_threads
from editing_app.runtime import AUTOCAST_DTYPES, resolve_device

NULL_MODES = ("per_step", "global")
PRECISIONS = tuple(AUTOCAST_DTYPES)
LPIPS_NETS = ("alex", "vgg", "squeeze")
COMPILE_BACKENDS = ("inductor", "aot_eager")
BACKGROUND_NORMALIZATIONS = ("region", "image")
TRAINER_PRECISIONS = (
    "64-true",
    "64",
    "32-true",
    "32",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "transformer-engine",
)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


@dataclass(frozen=True)
class Rule:
    """How one setting is checked.

    Attributes:
        kind: "int", "float", "bool", "choice", "text", "texts" (a non-empty list of strings),
            "overrides" (a possibly empty list of strings), "devices", "threads" (auto or an
            integer >= 1).
        low, high: the range of numbers (inclusive; `open_low` excludes low).
        options: the choices of a "choice" setting.
        optional: None is allowed.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    options: Sequence[str] = ()
    optional: bool = False

    def check(self, value: Any, key: str) -> None:
        if value is None and self.optional:
            return
        if value is None and self.kind != "text":
            raise UserInputError(f"{key} needs a value, got null")
        check = _CHECKS[self.kind]
        check(self, value, key)


def _number(rule: Rule, value: Any, key: str) -> None:
    if isinstance(value, bool):
        raise UserInputError(f"{key} must be a number, got {value!r}")
    settings.number(value, key, rule.low, rule.high, rule.open_low)


def _integer(rule: Rule, value: Any, key: str) -> None:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise UserInputError(f"{key} must be an integer, got {value!r}")
    settings.integer(value, key, rule.low, rule.high)


def _texts(rule: Rule, value: Any, key: str) -> None:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise UserInputError(f"{key} must be a non-empty list of names, got {value!r}")
    for item in value:
        settings.text(item, key)


def _overrides(rule: Rule, value: Any, key: str) -> None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise UserInputError(f"{key} must be a list of overrides, got {value!r}")
    for item in value:
        settings.text(item, key)


def _devices(rule: Rule, value: Any, key: str) -> None:
    if value == "auto" or (isinstance(value, Sequence) and not isinstance(value, str)):
        return
    _integer(Rule("int", low=-1), value, key)


_CHECKS: dict[str, Callable[[Rule, Any, str], None]] = {
    "int": _integer,
    "float": _number,
    "bool": lambda rule, value, key: settings.flag(value, key),
    "choice": lambda rule, value, key: settings.choice(value, key, rule.options),
    "text": lambda rule, value, key: settings.text(value, key, allow_empty=True),
    "texts": _texts,
    "threads": lambda rule, value, key: check_cpu_threads(value, key),
    "overrides": _overrides,
    "devices": _devices,
}

POSITIVE = Rule("float", low=0.0, open_low=True)
NON_NEGATIVE = Rule("float", low=0.0)
FRACTION = Rule("float", low=0.0, high=1.0)
COUNT = Rule("int", low=1)
STEPS = Rule("int", low=1, high=10**9)


def stage_rules() -> dict[str, Rule]:
    """Stage settings (the stages' own choice lists: imported here, with Lightning, for train.py
    only); nested nodes (`arch`, `datamodule`) belong to their builders."""
    from lightning_modules.base import _OPTIMIZERS as OPTIMIZERS
    from lightning_modules.unet_finetune import FINETUNE_MODE_SETTINGS, SAVE_DTYPES

    return {
        "name": Rule("text"),
        "num_steps": STEPS,
        "batch_size": COUNT,
        # null: the fine-tune mode's default (fine-tunes only: `check_stage_lr`)
        "lr": Rule("float", low=0.0, open_low=True, optional=True),
        "optimizer": Rule("choice", options=OPTIMIZERS),
        "finetune_mode": Rule("choice", options=FINETUNE_MODE_SETTINGS),
        "lora_rank": COUNT,
        "lora_alpha": Rule("float", low=0.0, open_low=True, optional=True),
        "lora_targets": Rule("texts"),
        "gradient_checkpointing": Rule("bool"),
        "save_dtype": Rule("choice", options=SAVE_DTYPES),
        "embed_artifact": Rule("text", optional=True),
        "noise_level": Rule("int", low=0, high=999, optional=True),
        "num_inference_steps": Rule("int", low=1, high=1000),
        "num_inner_steps": Rule("int", low=0, high=10**6),
        "guidance_scale": NON_NEGATIVE,
        "lr_decay": Rule("float", low=0.0, high=0.02),
        "early_stop": Rule("bool"),
        "early_stop_epsilon": NON_NEGATIVE,
        "early_stop_slope": NON_NEGATIVE,
        "null_mode": Rule("choice", options=NULL_MODES),
        "warmup_steps": Rule("int", low=0),
        "weight_decay": NON_NEGATIVE,
        "image_noise": NON_NEGATIVE,
        "init_from": Rule("text", optional=True),
        "caption_dropout": FRACTION,
        "snr_gamma": Rule("float", low=0.0, open_low=True, optional=True),
        "snr_floor": Rule("float", low=0.0, open_low=True, optional=True),
        "ema_decay": FRACTION,
        "noise_level_max": Rule("int", low=0, high=999),
    }


TRAINER_RULES: dict[str, Rule] = {
    "accelerator": Rule("choice", options=ACCELERATORS),
    "devices": Rule("devices"),
    "num_nodes": COUNT,
    "precision": Rule("choice", options=TRAINER_PRECISIONS),
    "max_steps": Rule("int", low=-1),
    "max_epochs": Rule("int", low=-1),
    "log_every_n_steps": COUNT,
    "enable_model_summary": Rule("bool"),
    "enable_progress_bar": Rule("bool"),
    "num_sanity_val_steps": Rule("int", low=0),
    "deterministic": Rule("bool"),
    "benchmark": Rule("bool"),
    "accumulate_grad_batches": COUNT,
    "gradient_clip_val": Rule("float", low=0.0, optional=True),
}

TOP_RULES: dict[str, Rule] = {
    "seed": Rule("int", low=0, high=2**63 - 1),
    "resume": Rule("bool"),
    "offload_frozen": Rule("bool"),
    "compile": Rule("bool"),
    "compile_backend": Rule("choice", options=COMPILE_BACKENDS),
    "device": Rule("text"),
    "cpu_threads": Rule("threads"),
    "precision": Rule("choice", options=PRECISIONS),
    "source_prompt": Rule("text"),
    "target_prompt": Rule("text"),
    "image": Rule("text", optional=True),
    "mask": Rule("text", optional=True),
    "image_fit": Rule("choice", options=FITS),
    "output_full_size": Rule("bool"),
    "output_dir": Rule("text"),
    "checkpoint_dir": Rule("text", optional=True),
    # evaluate.py
    "train_overrides": Rule("overrides"),
    "variant": Rule("text"),
    "case_blend_words": Rule("bool"),
    "keep_artifacts": Rule("bool"),
    "retry_failed": Rule("bool"),
    "summarize_only": Rule("bool"),
    "plot": Rule("bool"),
}

CALLBACK_RULES: dict[str, Rule] = {
    "checkpoint_every_n_steps": Rule("int", low=0),
    "checkpoint_time_share": Rule("float", low=0, high=1, open_low=True, optional=True),
    "every_n_steps": Rule("int", low=0),
    "time_share": Rule("float", low=0, high=1, open_low=True, optional=True),
    "num_inference_steps": Rule("int", low=1, high=1000),
}

METRIC_RULES: dict[str, Rule] = {
    "lpips_net": Rule("choice", options=LPIPS_NETS, optional=True),
    "background_normalize": Rule("choice", options=BACKGROUND_NORMALIZATIONS),
    "require_clip": Rule("bool"),
}

BASE_MODEL_RULES: dict[str, Rule] = {
    # The storage of frozen weights; what trains stays fp32 (lightning_modules.base.fp32_trained).
    "dtype": Rule("choice", options=tuple(WEIGHT_DTYPES)),
    "vae_dtype": Rule("choice", options=tuple(WEIGHT_DTYPES), optional=True),
    "vae_tiling": Rule("bool"),
    # what the UNet predicts, where a base model config sets it (the demo and tiny models)
    "prediction_type": Rule("choice", options=PREDICTION_TYPES, optional=True),
}

SR_RULES: dict[str, Rule] = {
    "num_inference_steps": Rule("int", low=1, high=1000),
    "guidance_scale": NON_NEGATIVE,
}


APP_RULES: dict[str, Rule] = {
    # app.py (configs/app.yaml); app.auth's form is checked by editing_app.web.settings
    "host": Rule("text"),
    "port": Rule("int", low=1, high=65535),
    "auth": Rule("text", optional=True),
    "session_dir": Rule("text"),
    "max_upload_mb": Rule("float", low=0, open_low=True, high=4096),
    "max_sessions": Rule("int", low=1),
}


def _check_node(node: Any, prefix: str, rules: dict[str, Rule]) -> None:
    for key in list(node.keys()):
        rule = rules.get(str(key))
        if rule is not None:
            rule.check(node[key], settings.FullKey(f"{prefix}{key}"))


def check_stage_lr(node: Any, prefix: str) -> None:
    """Refuse `lr: null` in a stage without a fine-tune mode to take its default from."""
    if "lr" in node and node.get("lr") is None and "finetune_mode" not in node:
        raise UserInputError(f"{prefix}lr needs a value, got null")


def stage_nodes(stage: Any) -> list[tuple[str, Any]]:
    """(key prefix, node) of every stage a stage config runs (composites: each sub-stage)."""
    if "sequence" in stage:
        return [(f"stage.{name}.", stage[name]) for name in stage.sequence]
    return [("stage.", stage)]


def _check_trainer(trainer: Any) -> None:
    import torch

    _check_node(trainer, "trainer.", TRAINER_RULES)
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserInputError(
            f"trainer.accelerator={accelerator} but no CUDA device is available: use trainer=cpu "
            "(or trainer.accelerator=cpu)"
        )


def validate_config(cfg: Any) -> None:
    """Check every setting of a composed train.yaml / edit.yaml / evaluate.yaml configuration."""
    _check_node(cfg, "", TOP_RULES)
    if cfg.get("device") is not None:
        resolve_device(cfg.device)
    if cfg.get("base_model") is not None:
        _check_node(cfg.base_model, "base_model.", BASE_MODEL_RULES)
    if cfg.get("trainer") is not None:
        _check_trainer(cfg.trainer)
    if cfg.get("stage") is not None:
        rules = stage_rules()
        for prefix, node in stage_nodes(cfg.stage):
            _check_node(node, prefix, rules)
            check_stage_lr(node, prefix)
    callbacks = cfg.get("callbacks")
    if callbacks is not None:
        _check_node(callbacks, "callbacks.", CALLBACK_RULES)
        if callbacks.get("preview") is not None:
            _check_node(callbacks.preview, "callbacks.preview.", CALLBACK_RULES)
    if cfg.get("sr") is not None:
        _check_node(cfg.sr, "sr.", SR_RULES)
    if cfg.get("metrics") is not None:
        _check_node(cfg.metrics, "metrics.", METRIC_RULES)
    if cfg.get("app") is not None:
        _check_node(cfg.app, "app.", APP_RULES)
