"""Shared plumbing of the command-line entry points (train.py, edit.py, evaluate.py).

A bad input ends the program with exit status 2 and one line on stderr (`error: ...`), no
traceback: the checks that raise `UserInputError` run before anything is written.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from editing.errors import UserInputError
from editing.io.output_dir import claim_output_dir


def quiet_warnings() -> None:
    """Silence library warnings that say nothing to a user of this tool."""
    for message in (
        r".*LeafSpec.*",  # lightning vs torch pytree deprecation
        r"Found \d+ module\(s\) in eval mode",  # frozen base models are eval by design
        r".*litlogger.*",
        r".*does not have many workers.*",
        # manually optimised stages checkpoint after their step, with the datamodule's next step,
        # as automatic optimisation does: the state a resume continues from
        r"Using ModelCheckpoint with manual optimization",
    ):
        warnings.filterwarnings("ignore", message=message)


def quiet_pixel_limit_warning() -> None:
    """Silence PIL's warning about an image over the pixel limit, once for the process: such an
    image is refused with the project's one line (`editing.io.images.read_header`), which the
    warning would only repeat. (Not part of `quiet_warnings`, which a fit applies inside
    `warnings.catch_warnings` while the web server keeps that warning an error.)"""
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def check_group_choices(config_dir: Path, argv: list[str]) -> None:
    """Refuse an unknown config-group choice (stage=foo) in one line, before Hydra starts.

    Hydra's own message spans several lines; this names the group and lists its options.
    """
    groups = {p.name for p in config_dir.iterdir() if p.is_dir()}
    for arg in argv:
        if "=" not in arg or arg.startswith(("~", "hydra")):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+")
        if key not in groups or not value or value in ("null", "none"):
            continue
        for choice in value.split(","):  # multirun sweeps: stage=a,b
            if not (config_dir / key / f"{choice}.yaml").is_file():
                options = ", ".join(sorted(p.stem for p in (config_dir / key).glob("*.yaml")))
                fail(f"unknown {key} {choice!r}: choose one of {options}")


def precheck(config_dir: Path, config_name: str, argv: list[str]) -> None:
    """Validate the command line before Hydra runs, so that mistakes end in one line.

    Unknown group choices list the options; unknown or malformed settings name the key. Sweeps
    (`-m`/`--multirun`) and Hydra's own flags are left to Hydra.
    """
    if any(a in ("-m", "--multirun") for a in argv):
        return
    overrides = [a for a in argv if not a.startswith("-")]
    if len(overrides) != len(argv):
        return  # --cfg, --help, --info ...: Hydra's business
    check_group_choices(config_dir, overrides)
    from editing_app.configs import compose_config

    try:
        compose_config(config_name, overrides)
    except Exception as err:  # Hydra's composition and parser errors
        text = str(err)
        if text.startswith("Could not override"):
            key = text.split("'")[1] if "'" in text else text
            fail(
                f"unknown setting {key}: check its name (`python {config_name}.py --cfg job` lists every setting)"
            )
        fail(" ".join(text.split())[:300])


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """Drop INFO chatter that libraries log through the root logger (open_clip's config notes)."""
    return record.levelno >= logging.WARNING or "open_clip" not in record.pathname


def configure_logging(level: int = logging.INFO) -> None:
    quiet_warnings()
    quiet_pixel_limit_warning()
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_libraries)
    for noisy in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Libraries' own chatter ("weights not initialised from checkpoint", hub notices) stays quiet.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()


def fail(message: str) -> None:
    """Print one error line and exit with status 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def run_cli(fn: Callable[[Any], Any], cfg: Any) -> Any:
    """Run `fn(cfg)`, turning user-input errors (ours, OmegaConf's, Hydra's) into one line."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import MissingMandatoryValue

    configure_logging()
    try:
        return fn(cfg)
    except UserInputError as err:
        fail(str(err))
    except MissingMandatoryValue as err:
        key = getattr(err, "full_key", None) or str(err).splitlines()[0]
        fail(f"missing required setting {key}: pass {key}=...")
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, UserInputError):
            fail(str(cause))
        if isinstance(cause, TypeError) and "unexpected keyword argument" in str(cause):
            fail(f"{str(cause).splitlines()[0]} (check the names of the settings you passed)")
        raise


def holds_output_dir(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate `fn(cfg, ...)` to run holding `cfg.output_dir` (see `claim_output_dir`).

    Before `fn` runs, the folder is checked writable (a file, a read-only folder or a full disk is
    refused in one line) and locked: a second run into the same folder is refused with the
    holder's pid. The lock is released when `fn` returns or raises.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(cfg: Any, *args: Any, **kwargs: Any) -> Any:
            with claim_output_dir(cfg.output_dir, what):
                return fn(cfg, *args, **kwargs)

        return run

    return wrap


def per_job_output_dir(cfg: Any) -> Any:
    """In a multirun (`-m`), point `cfg.output_dir` at this job's own folder.

    The configs' `hydra.sweep` is `dir: ${output_dir}`, `subdir: ${hydra.job.num}`: job N of a
    sweep with output_dir=O writes into O/N instead of every job overwriting O/edit.png. Outside
    a multirun `cfg` is returned unchanged.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return cfg
    cfg.output_dir = str(HydraConfig.get().runtime.output_dir)
    return cfg
