"""The local web app: upload a photo, mask it, train or invert once, then edit with sliders.

    python app.py                                     # the demo model on http://127.0.0.1:7860
    python app.py base_model=sd15 app.port=8000       # any base model edit.py accepts
    python app.py app.host=0.0.0.0 app.auth=me:secret # reachable from the network: needs users

Needs the `app` extra (`pip install '.[app]'`: Gradio). Settings: configs/app.yaml (`app.host`,
`app.port`, `app.auth`, `app.session_dir`, `app.max_upload_mb`, `device`). A bad setting ends in
one `error:` line before the model loads; the page itself shows errors as one line.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from editing.errors import UserInputError
from editing_app.cli import precheck, run_cli
from editing_app.configs import CONFIG_DIR
from editing_app.validation import validate_config

if TYPE_CHECKING:  # gradio is imported only after the server's environment is set
    import gradio as gr

    from editing_app.web.settings import AppSettings

log = logging.getLogger("app")

__all__ = ["build", "main", "start"]


def _gradio_available() -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserInputError(
            "the web app needs Gradio: pip install 'diffusion-image-editing[app]' (or "
            "`pip install -e '.[app]'` in a checkout)"
        ) from None


def build(cfg: DictConfig, base_model: str) -> tuple[gr.Blocks, AppSettings]:
    """(page, settings): the checked settings, the loaded model and its Gradio page (not yet
    serving). `base_model`: the configs/base_model choice, for the method plans."""
    from editing_app.web.settings import AppSettings

    validate_config(cfg)
    settings = AppSettings.from_config(cfg.app)
    from editing_app.web.server import prepare_environment, upload_root

    prepare_environment(settings)  # before gradio is imported
    _gradio_available()
    from demo_world.examples import EXAMPLES_DIR
    from editing_app import api
    from editing_app.cpu_threads import set_cpu_threads
    from editing_app.runtime import load_base_model, resolve_device
    from editing_app.web.page import build_page
    from editing_app.web.session import SessionStore

    device = resolve_device(cfg.device)
    if device.type == "cpu":
        set_cpu_threads(cfg.get("cpu_threads", "auto"))
    model = load_base_model(cfg.base_model).to(device)
    loaded = api.Model(
        diffusion=model,
        name=base_model,
        settings=OmegaConf.to_container(cfg.base_model, resolve=True),
        device=device,
    )
    sessions = SessionStore(
        settings.session_dir,
        upload_root(settings),
        settings.max_upload_bytes,
        settings.max_sessions,
    )
    example = EXAMPLES_DIR / "red_circle.png" if base_model == "demo" else None
    return build_page(loaded, base_model, sessions, example), settings


def start(
    cfg: DictConfig, base_model: str = "demo", block: bool = True
) -> tuple[gr.Blocks, AppSettings, str]:
    """Build and serve the app; with `block=False` return (page, settings, url) at once."""
    from editing_app.web.server import serve

    page, settings = build(cfg, base_model)
    log.info("%s", settings.describe())  # where it listens, and whether a password is required
    _, url, _ = serve(page, settings, block=block)
    return page, settings, url


def _base_model_choice() -> str:
    from hydra.core.hydra_config import HydraConfig

    try:
        return str(HydraConfig.get().runtime.choices.get("base_model", "demo"))
    except ValueError:
        return "demo"


@hydra.main(config_path=str(CONFIG_DIR), config_name="app", version_base=None)
def hydra_main(cfg: DictConfig) -> None:
    choice = _base_model_choice()
    run_cli(lambda c: start(c, choice), cfg)


def main() -> None:
    """The `app` command (`diffusion-edit-app`): the command line checked in one line, then the
    Hydra app."""
    precheck(CONFIG_DIR, "app", sys.argv[1:])
    hydra_main()
