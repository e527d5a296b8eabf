"""The checks every editor runs on its settings: one style, one message format.

Each function takes the value given (from the YAML or the command line, after Hydra) and the
setting's key without the `method.` prefix (a dotted key such as `stage.lr` is used as given), returns the normalised value and raises
`editing.errors.UserInputError` naming `method.<key>` otherwise. Editors call them from their
dataclass's `__post_init__`, so a bad setting is refused before anything is loaded or written.

    choice(value, key, options)            one of a few words
    choices(value, key, options)           a list of such words
    number(value, key, low, high)          one float, optionally in [low, high]
    integer(value, key, low, high)         one int, optionally in [low, high]
    numbers(value, key, low, high)         one float or a list of floats (sweeps)
    integers(value, key, low, high)        one int or a list of ints (seeds)
    optional_integer(value, key, ...)      None or one int
    flag(value, key)                       a boolean
    text(value, key, allow_empty)          a string
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from editing.errors import UserInputError, as_float_list, as_int_list, check_range, require_text

PREFIX = "method."


class FullKey(str):
    """A key that is already a full setting name (top-level settings such as `seed`)."""


def _name(key: str) -> str:
    return key if isinstance(key, FullKey) or "." in key else PREFIX + key


def choice(value: Any, key: str, options: Sequence[str]) -> str:
    """`value` if it is one of `options`; else `method.<key>='x' is not one of a, b`."""
    if value not in options:
        raise UserInputError(f"{_name(key)}={value!r} is not one of {', '.join(options)}")
    return value


def choices(value: Any, key: str, options: Sequence[str]) -> list[str]:
    """A non-empty list of words, each one of `options`."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise UserInputError(f"{_name(key)} must be a list of {', '.join(options)}, got {value!r}")
    return [choice(item, key, options) for item in value]


def check(
    value: float, key: str, low: float | None = None, high: float | None = None, open_low=False
) -> None:
    """Refuse a number outside [low, high] (`open_low`: (low, high]), naming `method.<key>`."""
    name = _name(key)
    if open_low and low is not None and value <= low:
        hi = "inf" if high is None else high
        raise UserInputError(f"{name}={value} is outside the allowed range ({low}, {hi}]")
    check_range(value, name, low, high)


def numbers(
    value: Any, key: str, low: float | None = None, high: float | None = None
) -> list[float]:
    """One number or a list of numbers, each in [low, high], as a list of floats."""
    items = as_float_list(value, _name(key))
    for item in items:
        check(item, key, low, high)
    return items


def integers(value: Any, key: str, low: int | None = None, high: int | None = None) -> list[int]:
    """One integer or a list of integers, each in [low, high], as a list of ints."""
    items = as_int_list(value, _name(key))
    for item in items:
        check(item, key, low, high)
    return items


def number(
    value: Any,
    key: str,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
) -> float:
    """Exactly one number (a one-item list is accepted), in [low, high] or (low, high]."""
    items = as_float_list(value, _name(key))
    if len(items) != 1:
        raise UserInputError(f"{_name(key)} takes one number, got {items}")
    check(items[0], key, low, high, open_low)
    return items[0]


def integer(value: Any, key: str, low: int | None = None, high: int | None = None) -> int:
    """Exactly one integer (a one-item list is accepted), in [low, high]."""
    items = as_int_list(value, _name(key))
    if len(items) != 1:
        raise UserInputError(f"{_name(key)} takes one integer, got {items}")
    check(items[0], key, low, high)
    return items[0]


def optional_integer(
    value: Any, key: str, low: int | None = None, high: int | None = None
) -> int | None:
    """None, or exactly one integer in [low, high]."""
    return None if value is None else integer(value, key, low, high)


def flag(value: Any, key: str) -> bool:
    """A boolean (true/false on the command line)."""
    if not isinstance(value, (bool, int)):
        raise UserInputError(f"{_name(key)} must be true or false, got {value!r}")
    return bool(value)


def text(value: Any, key: str, allow_empty: bool = False) -> str:
    """A string (None counts as ""), non-empty unless `allow_empty`."""
    return require_text(value, _name(key), allow_empty)
