"""The A1111-style `parameters` PNG text chunk, the one PNG-info tools read.

Format (AUTOMATIC1111's stable-diffusion-webui, read by its PNG Info tab and the tools that copy
it):

    <prompt, one or more lines>
    Negative prompt: <negative prompt>                  (only when there is one)
    Steps: 50, Sampler: DDIM, CFG scale: 7.5, Seed: 0, Size: 32x32, Model: demo

The settings line holds those of Steps, Sampler, CFG scale, Seed, Size and Model that the edit's
metadata has, in that order; a value holding a comma, colon or newline is JSON-quoted, as A1111
does. The project's own text fields are written beside it, unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PARAMETERS_KEY = "parameters"
SAMPLER_NAMES = {"ddim": "DDIM", "ddpm": "DDPM"}
# A1111 label -> the metadata keys that can fill it, first present wins.
SETTING_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Steps", ("num_inference_steps", "num_timesteps")),
    ("Sampler", ("sampler",)),
    ("CFG scale", ("guidance_scale",)),
    ("Seed", ("seed",)),
)


def _quote(text: str) -> str:
    """A1111's quoting of a settings value: as is, or JSON-quoted when it would split the line."""
    return json.dumps(text) if any(c in text for c in ",:\n") else text


def _format(label: str, value: Any) -> str:
    if label == "Sampler":
        return SAMPLER_NAMES.get(str(value), str(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def a1111_parameters(metadata: Mapping[str, Any], size: tuple[int, int]) -> str | None:
    """The `parameters` text of an image with this metadata and `size` (width, height), or None
    when the metadata has no prompt (a grid of several results)."""
    prompt = metadata.get("prompt")
    if prompt is None:
        return None
    lines = [str(prompt)]
    negative = metadata.get("negative_prompt")
    if negative:
        lines.append(f"Negative prompt: {negative}")
    settings = []
    for label, keys in SETTING_KEYS:
        key = next((k for k in keys if metadata.get(k) is not None), None)
        if key is not None:
            settings.append(f"{label}: {_quote(_format(label, metadata[key]))}")
    settings.append(f"Size: {size[0]}x{size[1]}")
    if metadata.get("base_model"):
        settings.append(f"Model: {_quote(str(metadata['base_model']))}")
    lines.append(", ".join(settings))
    return "\n".join(lines)
