"""One source for each default: every YAML value equals the code default it stands for.

configs/method/*.yaml against its editor's dataclass fields (and every field is in the YAML);
configs/stage/*.yaml against its LightningModule's constructor (`arch` nodes against the builder
they are passed to; composite stages' sub-nodes only for their keys, as they override on purpose).
"""

from __future__ import annotations

import dataclasses
import inspect

import hydra
import pytest
import yaml

from editing_app.configs import CONFIG_DIR
from editing_app.registry import editor_class, editor_defaults, method_names, method_yaml

# Values the YAML takes from elsewhere (the top-level `clip` group): not code defaults.
INTERPOLATED = {
    ("blended", "clip_path"),
    ("blended", "clip_name"),
    ("blended_latent", "clip_path"),
    ("blended_latent", "clip_name"),
    ("imagic", "clip_path"),
    ("imagic", "clip_name"),
}
# Stage keys that are not constructor arguments.
STAGE_KEYS = {"_target_", "datamodule", "sequence", "defaults"}
# `arch` nodes are the keyword arguments of these builders.
ARCH_BUILDERS = {
    "pretrain_clip": "lightning_modules.clip_pretrain.demo_clip",
    "pretrain_demo_sr": "demo_world.demo_sr.build_demo_sr",
}
# YAML values that differ from the constructor default (lightning_modules/ is left as is: the
# YAML is what train.py runs).
STAGE_DISAGREEMENTS: dict[tuple[str, str], str] = {}


def same(yaml_value, default) -> bool:
    """YAML lists equal code tuples item by item; booleans only equal booleans."""
    if isinstance(yaml_value, list) and isinstance(default, (list, tuple)):
        return len(yaml_value) == len(default) and all(map(same, yaml_value, default))
    if isinstance(yaml_value, bool) or isinstance(default, bool):
        return yaml_value is default
    return yaml_value == default


def _method_keys():
    return [
        pytest.param(m, k, id=f"{m}.{k}")
        for m in method_names()
        for k in method_yaml(m)
        if k != "_target_"
    ]


@pytest.mark.parametrize("method, key", _method_keys())
def test_method_yaml_value_is_the_code_default(method, key):
    defaults = editor_defaults(method)
    assert key in defaults, (
        f"configs/method/{method}.yaml: {key} is not a setting of {editor_class(method).__name__}"
    )
    value = method_yaml(method)[key]
    if (method, key) in INTERPOLATED:
        assert isinstance(value, str) and value.startswith("${")
        return
    assert same(value, defaults[key]), f"{method}.{key}: YAML {value!r}, code {defaults[key]!r}"


@pytest.mark.parametrize("method", method_names())
def test_every_setting_is_in_the_yaml(method):
    cls = editor_class(method)
    assert dataclasses.is_dataclass(cls)
    missing = set(editor_defaults(method)) - set(method_yaml(method))
    assert not missing, f"configs/method/{method}.yaml does not list {sorted(missing)}"
    assert method_yaml(method)["name"] == method


def _stage_yaml(name: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / "stage" / f"{name}.yaml").read_text())


def _parameters(target: str) -> dict[str, inspect.Parameter]:
    obj = hydra.utils.get_object(target)
    return dict(inspect.signature(obj.__init__ if isinstance(obj, type) else obj).parameters)


def _stage_keys():
    out = []
    for path in sorted((CONFIG_DIR / "stage").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if "_target_" not in raw:
            continue
        for key in raw:
            if key in STAGE_KEYS:
                continue
            marks = ()
            if (path.stem, key) in STAGE_DISAGREEMENTS:
                marks = pytest.mark.xfail(reason=STAGE_DISAGREEMENTS[path.stem, key], strict=True)
            out.append(pytest.param(path.stem, key, marks=marks, id=f"{path.stem}.{key}"))
    return out


@pytest.mark.parametrize("stage, key", _stage_keys())
def test_stage_yaml_value_is_the_constructor_default(stage, key):
    raw = _stage_yaml(stage)
    params = _parameters(raw["_target_"])
    assert key in params, (
        f"configs/stage/{stage}.yaml: {key} is not an argument of {raw['_target_']}"
    )
    value = raw[key]
    if key == "arch":  # keyword arguments of the builder: compare with its defaults
        builder = _parameters(ARCH_BUILDERS[stage])
        for k, v in value.items():
            assert k in builder, f"{stage}.arch.{k} is not an argument of {ARCH_BUILDERS[stage]}"
            assert same(v, builder[k].default), (
                f"{stage}.arch.{k}: YAML {v!r}, code {builder[k].default!r}"
            )
        return
    default = params[key].default
    assert same(value, default), f"{stage}.{key}: YAML {value!r}, code {default!r}"


@pytest.mark.parametrize(
    "stage",
    [
        p.stem
        for p in sorted((CONFIG_DIR / "stage").glob("*.yaml"))
        if "_target_" not in _stage_yaml(p.stem)
    ],
)
def test_composite_stage_nodes_are_constructor_arguments(stage):
    from helpers import compose_config

    cfg = compose_config("train", [f"stage={stage}"]).stage
    assert list(cfg.sequence), f"{stage} has neither _target_ nor sequence"
    for sub in cfg.sequence:
        node = cfg[sub]
        params = _parameters(node._target_)
        for key in node:
            if key not in STAGE_KEYS:
                assert key in params, f"{stage}.{sub}.{key} is not an argument of {node._target_}"
    raw_subs = {k for k, v in _stage_yaml(stage).items() if isinstance(v, dict)}
    assert raw_subs <= set(cfg.sequence), f"{stage}: nodes {raw_subs - set(cfg.sequence)} never run"
