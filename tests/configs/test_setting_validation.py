"""Every setting of every config file is checked before any model loads: a wrong type and an
out-of-range value each end in one UserInputError naming the setting (the entry points turn it
into one `error:` line, exit 2)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from editing.errors import UserInputError
from editing_app.configs import CONFIG_DIR, compose_config
from editing_app.registry import build_editor, editor_class, editor_defaults, method_names
from editing_app.validation import (
    APP_RULES,
    BASE_MODEL_RULES,
    CALLBACK_RULES,
    METRIC_RULES,
    SR_RULES,
    TOP_RULES,
    TRAINER_RULES,
    Rule,
    stage_nodes,
    stage_rules,
    validate_config,
)

# Nodes that are not settings: Hydra targets, nested builders' nodes, composites' orders.
NOT_SETTINGS = {"_target_", "datamodule", "arch", "sequence", "defaults", "hydra", "strategy"}
# Top-level nodes checked by their own groups' rules or by their loaders.
GROUP_NODES = {"base_model", "method", "stage", "trainer", "callbacks", "logger", "clip", "suite"}
EVALUATE_NODES = {"train_stages", "metrics", "sr"}


def bad_values(rule: Rule) -> list:
    """A wrong-type value and the out-of-range values of a rule (none for free text)."""
    wrong_type = {
        "int": "abc",
        "float": "abc",
        "bool": "maybe",
        "choice": "no-such-choice",
        "texts": 5,
        "overrides": 5,
        "devices": "abc",
        "threads": "abc",
    }
    values = [] if rule.kind == "text" else [wrong_type[rule.kind]]
    if rule.kind in ("int", "float"):
        if rule.low is not None:
            values.append(rule.low if rule.open_low else rule.low - 1)
        if rule.high is not None:
            values.append(rule.high + 1)
    if rule.kind == "int":
        values.append(1.5)
    if rule.kind == "threads":
        values += [0, 1.5]
    return values


def _cases(config: str, overrides: list[str], nodes) -> list:
    cases = []
    for prefix, node, rules in nodes(compose_config(config, overrides)):
        for key in node:
            if key in NOT_SETTINGS or OmegaConf.is_dict(node[key]) and key not in rules:
                continue
            assert key in rules, f"{prefix}{key} ({config} {overrides}) has no validation rule"
            for value in bad_values(rules[key]):
                cases.append(pytest.param(config, overrides, f"{prefix}{key}", value))
    return cases


def _stage_cases() -> list:
    rules = stage_rules()
    cases = []
    for path in sorted((CONFIG_DIR / "stage").glob("*.yaml")):
        cases += _cases(
            "train",
            [f"stage={path.stem}", "base_model=tiny"],
            lambda cfg: [(p, n, rules) for p, n in stage_nodes(cfg.stage)],
        )
    return cases


def _other_cases() -> list:
    cases = []
    for trainer in sorted((CONFIG_DIR / "trainer").glob("*.yaml")):
        cases += _cases(
            "train", [f"trainer={trainer.stem}"], lambda c: [("trainer.", c.trainer, TRAINER_RULES)]
        )
    cases += _cases(
        "train",
        ["callbacks=default"],
        lambda c: [
            ("callbacks.", c.callbacks, CALLBACK_RULES),
            ("callbacks.preview.", c.callbacks.preview, CALLBACK_RULES),
        ],
    )
    for config, skip in (("train", GROUP_NODES), ("edit", GROUP_NODES), ("evaluate", GROUP_NODES)):
        top = lambda c, skip=skip: [  # noqa: E731
            (
                "",
                OmegaConf.masked_copy(c, [k for k in c if k not in skip | EVALUATE_NODES]),
                TOP_RULES,
            )
        ]
        cases += _cases(config, ["output_dir=/tmp/o"], top)
    cases += _cases("edit", ["output_dir=/tmp/o"], lambda c: [("sr.", c.sr, SR_RULES)])
    for base in sorted((CONFIG_DIR / "base_model").glob("*.yaml")):  # the keys with a rule
        cases += _cases(
            "train",
            [f"base_model={base.stem}"],
            lambda c: (
                [
                    (
                        "base_model.",
                        OmegaConf.masked_copy(
                            c.base_model, [k for k in BASE_MODEL_RULES if k in c.base_model]
                        ),
                        BASE_MODEL_RULES,
                    )
                ]
                if OmegaConf.is_dict(c.base_model)
                else []
            ),
        )
    cases += _cases(
        "evaluate", ["output_dir=/tmp/o"], lambda c: [("metrics.", c.metrics, METRIC_RULES)]
    )
    cases += _cases(
        "app",
        [],
        lambda c: [
            ("app.", c.app, APP_RULES),
            (
                "",
                OmegaConf.masked_copy(c, [k for k in c if k not in GROUP_NODES | {"app"}]),
                TOP_RULES,
            ),
        ],
    )
    return cases


_COMPOSED: dict[tuple, object] = {}


def _composed(config: str, overrides: list[str]):
    """A fresh copy of a composed config (each composition is made once per session)."""
    key = (config, *overrides)
    if key not in _COMPOSED:
        output = [] if config == "app" else ["output_dir=/tmp/o"]  # the app writes no output_dir
        _COMPOSED[key] = compose_config(config, [*overrides, *output])
    return OmegaConf.create(OmegaConf.to_container(_COMPOSED[key], resolve=True))


@pytest.mark.parametrize("config, overrides, key, value", _stage_cases() + _other_cases())
def test_a_bad_value_of_every_setting_is_refused_naming_it(
    config, overrides, key, value, monkeypatch
):
    # GPU trainer configs are valid on a GPU machine: CUDA's absence is tested on its own below.
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    cfg = _composed(config, overrides)
    validate_config(cfg)  # the shipped values pass
    OmegaConf.update(cfg, key, value, merge=False)
    with pytest.raises(UserInputError, match=key.split(".")[-1]):
        validate_config(cfg)


# Method settings are checked by each editor's dataclass (editing.editors.settings).
FREE_TEXT = {"name", "inversion_prompt", "clip_path", "clip_name", "target_prompts", "blend_words"}
# Numeric settings without a bound in either direction: any integer is a seed.
UNBOUNDED = {("imagic", "seeds"), ("direct_inversion", "seeds")}
# Mappings, checked where they are used (cross_replace_steps also takes a number).
MAPPINGS = {"equalizer"}


def _method_cases() -> list:
    cases = []
    for name in method_names():
        for key, default in editor_defaults(name).items():
            if key in FREE_TEXT or key in MAPPINGS:
                continue
            cases.append(pytest.param(name, key, "abc", id=f"{name}.{key}-type"))
            numeric = not isinstance(default, (bool, str)) and (
                isinstance(default, (int, float)) or default is None
            )
            if numeric and (name, key) not in UNBOUNDED:
                cases.append(pytest.param(name, key, "range", id=f"{name}.{key}-range"))
    return cases


def test_the_shipped_method_settings_pass():
    for name in method_names():
        build_editor(name, [])


@pytest.mark.parametrize("method, key, kind", _method_cases())
def test_a_bad_method_setting_is_refused_naming_it(method, key, kind):
    # The editor dataclass gets the value as Hydra passes a command-line override.
    def build(value):
        return editor_class(method)(**{key: value})

    if kind == "abc":
        with pytest.raises(UserInputError, match=key):
            build("abc")
        return
    refused = 0
    for value in (-(10**9), 10**9):
        try:
            build(value)
        except UserInputError as err:
            assert key in str(err)
            refused += 1
    assert refused >= 1, f"method.{key} accepts both -1e9 and 1e9"


def test_a_gpu_trainer_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(UserInputError, match="trainer.accelerator=gpu but no CUDA device"):
        validate_config(_composed("train", ["trainer=gpu"]))
    with pytest.raises(UserInputError, match="device=cuda but no CUDA device"):
        validate_config(_composed("edit", ["device=cuda"]))
