"""Named presets of pixel Blended Diffusion: the settings of the paper's applications.

`method.preset` of `method=blended` (configs/method/blended.yaml):

    none        the plain edit: skip 25 of 100 steps (the reference code's default, k = 75)
    scribble    scribble-guided editing: start from the noised scribbled image at k = 60 of 100
                steps (skip 40), so the scribble's colours and rough shape survive
    background  background replacement: k = 67 of 100 (skip 33) and the mask inverted, i.e.
                `mask=` marks the object to keep and everything else is edited

k is the paper's Algorithm 2 input "diffusion steps k": x_k ~ q(x_k | x0), then the steps
t = k .. 1 run, so k is the starting step (the number of steps run) and `skip_timesteps` =
`num_timesteps` - k. For another `num_timesteps`, k is the same fraction of the chain
(k = round(fraction * num_timesteps)). A setting the user gives explicitly (not null) wins over
the preset: `method.preset=scribble method.skip_timesteps=30` skips 30.
See docs/blended_recipes.md for the sources and what could be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from editing.editors import settings
from editing.errors import UserInputError

__all__ = ["PRESETS", "Preset", "resolve_preset"]


@dataclass(frozen=True)
class Preset:
    """k_fraction: the starting step k as a fraction of the chain; invert_mask: edit outside."""

    k_fraction: float
    invert_mask: bool


PRESETS: dict[str, Preset] = {
    "none": Preset(k_fraction=0.75, invert_mask=False),
    "scribble": Preset(k_fraction=0.60, invert_mask=False),
    "background": Preset(k_fraction=0.67, invert_mask=True),
}


def preset_skip(preset: str, num_timesteps: int) -> int:
    """The steps the preset skips on a chain of `num_timesteps` (k at least 1)."""
    k = max(1, round(PRESETS[preset].k_fraction * num_timesteps))
    return num_timesteps - min(k, num_timesteps)


def resolve_preset(
    preset: str, num_timesteps: int, skip_timesteps: int | None, invert_mask: bool | None
) -> tuple[str, int, bool]:
    """(preset, skip_timesteps, invert_mask), checked: each None taken from the preset."""
    preset = settings.choice(preset, "preset", tuple(PRESETS))
    if skip_timesteps is None:
        skip_timesteps = preset_skip(preset, num_timesteps)
    skip_timesteps = settings.integer(skip_timesteps, "skip_timesteps", 0, num_timesteps - 1)
    if invert_mask is None:
        invert_mask = PRESETS[preset].invert_mask
    if not isinstance(invert_mask, bool) and invert_mask not in (0, 1):  # e.g. a stray number
        raise UserInputError(f"method.invert_mask must be true or false, got {invert_mask!r}")
    return preset, skip_timesteps, settings.flag(invert_mask, "invert_mask")
