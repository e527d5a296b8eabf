"""Where the demo world's shipped files live: `assets/` in a checkout, or the copy an installed
wheel carries as package data (`demo_world/asset_files/`, mapped from `assets/` by setup.py)."""

from __future__ import annotations

from pathlib import Path

_PACKAGED = Path(__file__).resolve().parent / "asset_files"
_CHECKOUT = Path(__file__).resolve().parents[1] / "assets"

ASSETS_DIR: Path = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT
"""The root holding `demo/` (model, clip, sr) and `examples/`."""


def asset_path(relative: str) -> str:
    """The absolute path of `relative` under `ASSETS_DIR` (e.g. "demo/clip")."""
    return str(ASSETS_DIR / relative)
