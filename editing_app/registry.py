"""The editing methods, found in `configs/method/`: one YAML per method, nothing else to register.

A method is the stem of `configs/method/<name>.yaml`; that file's `_target_` names its editor
class (an `editing.editors.contract.Editor` dataclass) and its other keys are the editor's
settings. `configs/evaluate.yaml`'s `train_stages` says which methods need a training stage
(`configs/stage/<stage>.yaml`) before they edit. Entry points, the evaluation runner, the demo
and the tests ask here rather than keeping their own lists.

    method_names()                   ["blended", "blended_latent", ...]
    method_yaml(name)                the YAML as written (uninterpolated)
    editor_class(name)               the `_target_` class, imported
    editor_defaults(name)            {setting: default} of the editor's dataclass
    build_editor(name, overrides)    compose `edit` with method=<name> + overrides, instantiate
    instantiate_editor(method_cfg)   the editor of a composed `cfg.method`, bad settings one line
    train_stages()                   evaluate.yaml's {method: {stage, when}}
    required_stage(method_cfg, ...)  the stage a configured method needs first, or None
    stage_names()                    the stems of configs/stage/*.yaml
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from editing.errors import UserInputError
from editing_app.configs import CONFIG_DIR, compose_config

METHOD_DIR = CONFIG_DIR / "method"
STAGE_DIR = CONFIG_DIR / "stage"

__all__ = [
    "build_editor",
    "editor_class",
    "editor_defaults",
    "instantiate_editor",
    "method_names",
    "method_yaml",
    "required_stage",
    "stage_names",
    "train_stages",
]


def method_names() -> list[str]:
    """Every method, sorted: the stems of configs/method/*.yaml."""
    return sorted(p.stem for p in METHOD_DIR.glob("*.yaml"))


def stage_names() -> list[str]:
    """Every training stage, sorted: the stems of configs/stage/*.yaml."""
    return sorted(p.stem for p in STAGE_DIR.glob("*.yaml"))


def _check(name: str) -> None:
    if name not in method_names():
        raise UserInputError(f"unknown method {name!r}: choose one of {', '.join(method_names())}")


@functools.cache
def _yaml(path: str) -> dict[str, Any]:
    return yaml.safe_load(open(path)) or {}


def method_yaml(name: str) -> dict[str, Any]:
    """configs/method/<name>.yaml as written (interpolations such as `${clip.path}` unresolved)."""
    _check(name)
    return dict(_yaml(str(METHOD_DIR / f"{name}.yaml")))


def editor_class(name: str) -> type:
    """The editor class the method's `_target_` names."""
    import hydra

    return hydra.utils.get_class(method_yaml(name)["_target_"])


def editor_defaults(name: str) -> dict[str, Any]:
    """{setting: code default} of the method's editor (the fields of its dataclass)."""
    out = {}
    for f in dataclasses.fields(editor_class(name)):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def build_editor(name: str, overrides: Sequence[str] = ()):
    """The editor of `edit.py method=<name> *overrides` (the `edit` config composed, then
    `hydra.utils.instantiate(cfg.method)`); `overrides` are Hydra overrides, e.g.
    `["method.eta=0.8", "clip=none"]`. Bad settings raise `UserInputError`."""
    _check(name)
    cfg = compose_config("edit", [f"method={name}", *overrides])
    return instantiate_editor(cfg.method)


def instantiate_editor(method_cfg: Mapping):
    """`hydra.utils.instantiate(method_cfg)`, the editor's own `UserInputError` (a bad setting,
    refused by its dataclass) raised as it is rather than wrapped by Hydra."""
    import hydra
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(method_cfg)
    except InstantiationException as err:
        if isinstance(err.__cause__, UserInputError):
            raise err.__cause__ from None
        raise


def train_stages() -> dict[str, dict[str, Any]]:
    """configs/evaluate.yaml's `train_stages`: {method: {stage: S, when: {setting: value}}}."""
    return dict(_yaml(str(CONFIG_DIR / "evaluate.yaml")).get("train_stages") or {})


def required_stage(method_cfg: Mapping, stages: Mapping | None = None) -> str | None:
    """The stage the configured method (`cfg.method`, with its `name`) must train before it
    edits, or None: its `train_stages` entry (default: evaluate.yaml's) when every `when`
    setting matches."""
    stages = train_stages() if stages is None else stages
    entry = stages.get(method_cfg.get("name", "")) or {}
    if not entry.get("stage"):
        return None
    for key, value in (entry.get("when") or {}).items():
        if method_cfg.get(key) != value:
            return None
    return str(entry["stage"])


def method_editing_from(artifact_stage: str) -> str | None:
    """The method whose editor reads the artifact `<artifact_stage>.safetensors` (its class
    attribute `artifacts`), or None."""
    for name in method_names():
        if artifact_stage in getattr(editor_class(name), "artifacts", ()):
            return name
    return None


def edit_command(artifact_stage: str, base_model: str, checkpoint_dir) -> str | None:
    """The edit.py command that uses what a stage just wrote (None when no method reads it)."""
    method = method_editing_from(artifact_stage)
    if method is None:
        return None
    needs_target = method != "imagic"  # Imagic edits towards the text it was trained for
    target = " target_prompt='...'" if needs_target else ""
    return (
        f"python edit.py method={method} base_model={base_model} checkpoint_dir={checkpoint_dir}"
        f"{target} output_dir=OUT"
    )
