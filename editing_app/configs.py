"""Where the Hydra configs live and how the entry points compose them outside `@hydra.main`."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


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
