"""Where the Hydra configs live and how the entry points compose them outside `@hydra.main`.

A checkout reads `configs/` at its root; an installed wheel reads the copy it carries as package
data (`editing_app/config_files/`, mapped from `configs/` by setup.py). Importing this module
registers the `demo_asset` resolver: `${demo_asset:demo/clip}` in a config is the absolute path
of that shipped file, wherever the project is installed.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from demo_world.asset_paths import asset_path

_PACKAGED = Path(__file__).resolve().parent / "config_files"
_CHECKOUT = Path(__file__).resolve().parents[1] / "configs"

CONFIG_DIR: Path = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT

OmegaConf.register_new_resolver("demo_asset", asset_path, replace=True)


def compose_config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """`configs/<name>.yaml` composed with Hydra `overrides`, as the command line would.

    Reuses an already-initialised Hydra (inside a Hydra app or another `compose_config`) and
    otherwise initialises one on `CONFIG_DIR` for the duration of the call.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [str(o) for o in overrides]
    if GlobalHydra.instance().is_initialized():
        return compose(config_name=name, overrides=overrides)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=name, overrides=overrides)
