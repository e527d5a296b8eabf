"""Shared plumbing of the command-line entry points (train.py, edit.py, evaluate.py).

A bad input ends the program with exit status 2 and one line on stderr (`error: ...`), no
traceback: the checks that raise `UserInputError` run before anything is written.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from editing.errors import UserInputError


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
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
