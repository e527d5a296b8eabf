"""User-facing errors and the small checks that raise them.

A `UserInputError` is a problem with what the user gave us (a path, a prompt, a hyper-parameter,
an artifact from another run). The command-line entry points print its message as one line and
exit with status 2, with no traceback; nothing partial is written because every check runs before
the first write.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


class UserInputError(Exception):
    """A bad input: the message names the input and says how to fix it."""


def as_float_list(value: Any, name: str) -> list[float]:
    """A number or a list of numbers given on the command line, as a list of floats.

    Raises `UserInputError` naming `name` for anything else (a word, NaN, an empty list).
    """
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if not items:
        raise UserInputError(f"{name} is an empty list; give at least one number, e.g. {name}=0.7")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise UserInputError(
                f"{name} must be a number or a list of numbers (e.g. {name}=[0.6,0.7]), got {item!r}"
            )
        if not math.isfinite(float(item)):
            raise UserInputError(f"{name} must be finite, got {item!r}")
        out.append(float(item))
    return out


def as_int_list(value: Any, name: str) -> list[int]:
    """An integer or a list of integers (seeds, step counts), as a list of ints."""
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if not items:
        raise UserInputError(f"{name} is an empty list; give at least one integer")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise UserInputError(
                f"{name} must be an integer or a list of integers (e.g. {name}=[0,1]), got {item!r}"
            )
    return [int(i) for i in items]


def check_range(
    value: float, name: str, low: float | None = None, high: float | None = None
) -> None:
    """Refuse a number outside [low, high] (either bound optional)."""
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise UserInputError(f"{name}={value} is outside the allowed range [{lo}, {hi}]")


def require_text(value: Any, name: str, allow_empty: bool = False) -> str:
    """A prompt given by the user: a string, non-empty unless `allow_empty`."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise UserInputError(f"{name} must be text, got {value!r}")
    if not allow_empty and not value.strip():
        raise UserInputError(f"{name} is empty; give the text to edit towards, e.g. {name}='a cat'")
    return value
