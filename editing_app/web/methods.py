"""What the app runs for each method: the stage trained once, the edit repeated, their settings.

On the demo model the settings are `make demo`'s (`editing_app.commands.demo.plan`, read from its
override lists, so there is one source for them): Imagic's `stage=imagic_demo`, null-text's 50 x 10
inversion with LocalBlend on 16x16 maps, Direct Inversion inverted with the caption at 50 + 50
steps, pixel Blended Diffusion with text conditioning and a dilated mask. On any other model the
configs' defaults hold (`stage=imagic`, `configs/method/*.yaml`), and Blended runs as Blended
Latent Diffusion on latent models. The sliders of the page override the edit settings.

The page offers only the methods the loaded model runs (`offered_methods`): the check is edit.py's
own (`editing.editors.apply.check_conditioning`, on the editor class with the plan's settings), so
a method whose editor does not run on SDXL is not offered there (today every family runs), and
on an unconditional model no method that conditions on text is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from editing.errors import UserInputError

__all__ = ["METHOD_LABELS", "MethodPlan", "method_plan", "offered_methods"]

METHOD_LABELS: dict[str, str] = {
    "Direct Inversion": "direct_inversion",
    "Imagic": "imagic",
    "Null-text + Prompt-to-Prompt": "null_text_p2p",
    "Blended Diffusion": "blended",
}
"""The method choices of the page, by label: the family's edit method (`configs/method/`)."""

_STAGE_OF = {"imagic": "imagic", "null_text_p2p": "null_text"}


@dataclass(frozen=True)
class MethodPlan:
    """One method family on one base model.

    Attributes:
        method: the edit method (`configs/method/<method>.yaml`).
        stage: the training stage run once before the edits (`configs/stage/`), or None.
        stage_settings: its `stage.*` settings (composite stages: per part, as dicts).
        edit_settings: the edit's `method.*` settings before the sliders.
    """

    method: str
    stage: str | None = None
    stage_settings: dict[str, Any] = field(default_factory=dict)
    edit_settings: dict[str, Any] = field(default_factory=dict)


def _settings(overrides: list[str], prefix: str) -> dict[str, Any]:
    """`prefix.a.b=v` overrides as nested dicts ({"a": {"b": v}}), values parsed as YAML."""
    out: dict[str, Any] = {}
    for override in overrides:
        key, _, value = override.partition("=")
        if not key.startswith(prefix + "."):
            continue
        *parents, leaf = key[len(prefix) + 1 :].split(".")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = yaml.safe_load(value)
    return out


def _choice(overrides: list[str], key: str) -> str | None:
    return next((o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}=")), None)


def _demo_plans() -> dict[str, MethodPlan]:
    """The families of `make demo`'s plan on the demo model, by edit method."""
    import json

    from demo_world.examples import EXAMPLES_DIR
    from editing_app.commands.demo import EXAMPLE, plan

    example = json.loads((EXAMPLES_DIR / "examples.json").read_text())[EXAMPLE]
    steps = plan("demo", False, example, Path("demo_output"))
    stages: dict[str, tuple[str, dict[str, Any]]] = {}
    plans: dict[str, MethodPlan] = {}
    for _, kind, overrides in steps:
        if kind == "train":
            stage = _choice(overrides, "stage")
            stages[stage] = (stage, _settings(overrides, "stage"))
            continue
        method = _choice(overrides, "method")
        if method in plans:
            continue
        stage = next((s for s in stages if s.startswith(_STAGE_OF.get(method, "-"))), None)
        stage_name, stage_settings = stages.get(stage, (None, {}))
        plans[method] = MethodPlan(
            method, stage_name, stage_settings, _settings(overrides, "method")
        )
    return plans


def method_plan(family: str, base_model: str, latent: bool) -> MethodPlan:
    """The plan of a method family (a value of `METHOD_LABELS`) on `base_model` (its
    configs/base_model choice); `latent`: whether the model works in a VAE's latent space."""
    if base_model == "demo":
        plans = _demo_plans()
        if family in plans:
            return plans[family]
    if family == "blended" and latent:
        return MethodPlan("blended_latent")
    if family == "blended":
        return MethodPlan("blended", edit_settings={"text_condition": True})
    return MethodPlan(family, _STAGE_OF.get(family))


class _PlannedEditor:
    """An editor class seen with a plan's edit settings (what `check_conditioning` reads of an
    editor: its class attributes, `text_condition` as the plan sets it), without building it."""

    def __init__(self, cls: type, settings: dict[str, Any]) -> None:
        self._cls = cls
        self._settings = settings
        self.name = settings.get("name", getattr(cls, "name", cls.__name__))

    def __getattr__(self, key: str) -> Any:
        if key in self._settings:
            return self._settings[key]
        return getattr(self._cls, key)


def offered_methods(plans: dict[str, MethodPlan], model: Any) -> dict[str, str]:
    """The entries of `METHOD_LABELS` whose plan (`plans`, by family) runs on `model` (a
    `DiffusionModel`): those `check_conditioning` does not refuse, in the labels' order."""
    import hydra.utils

    from editing.editors.apply import check_conditioning
    from editing_app.configs import compose_config

    offered = {}
    for label, family in METHOD_LABELS.items():
        plan = plans[family]
        target = compose_config("edit", [f"method={plan.method}"]).method._target_
        editor = _PlannedEditor(hydra.utils.get_class(target), plan.edit_settings)
        try:
            check_conditioning(editor, model)
        except UserInputError:
            continue
        offered[label] = family
    return offered
