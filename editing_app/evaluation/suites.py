"""Edit suites: the `Case`s a benchmark run edits, sharding, and the demo world's suite.

Three suites (`configs/suite/*.yaml`, each `_target_` returns a list of cases):

- `demo_suite` (here): the demo world's generated cases (`demo_world.suite.make_suite`), with
  the source/target scenes the attribute oracle judges against and the ideal target render;
- `editing_app.evaluation.tedbench.tedbench_suite`: TEdBench as its authors ship it;
- `editing_app.evaluation.piebench.piebench_suite`: PIE-Bench's `mapping_file.json`.

Missing images are not an error at reading time: such a case fails when it runs and is recorded.
A malformed list or mapping file is a `UserInputError` naming the entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from editing.errors import UserInputError
from editing_app.evaluation.rle import RleMask

__all__ = [
    "SUITE_KEYS",
    "Case",
    "case_record",
    "check_unique",
    "demo_suite",
    "load_cases",
    "pick_text",
    "read_json",
    "resolve_image",
    "select_shard",
    "slug",
]


@dataclass(frozen=True, eq=False)
class Case:
    """One edit of a suite.

    Attributes:
        case_id: unique within the suite; names the folder `O/cases/<case_id>`.
        image: uint8 [H, W, 3] RGB, or the path of an image file.
        source_prompt: caption of the image ("" when the suite has none).
        target_prompt: the edit text.
        mask: bool [H, W] (True = region to edit), an `RleMask` decoded at the image's size, or
            None.
        edit_type: the suite's category of the edit ("colour", "change_object", ...; "" if none).
        extra: suite-specific data (demo: `source_scene`, `target_scene`, `target_image`;
            PIE-Bench: `blend_words`, `blended_word`, `editing_instruction`, ...).
    """

    case_id: str
    image: np.ndarray | Path
    source_prompt: str
    target_prompt: str
    mask: np.ndarray | RleMask | None = None
    edit_type: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _json_safe(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _json_safe(asdict(value))
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return None  # arrays and other bulky objects are not recorded


def case_record(case: Case) -> dict[str, Any]:
    """A JSON-safe description of `case` for result.json (arrays are left out)."""
    extra = {k: _json_safe(v) for k, v in case.extra.items() if not isinstance(v, np.ndarray)}
    return {
        "case_id": case.case_id,
        "edit_type": case.edit_type,
        "source_prompt": case.source_prompt,
        "target_prompt": case.target_prompt,
        "image": str(case.image) if isinstance(case.image, Path) else "<generated>",
        "has_mask": case.mask is not None,
        "extra": extra,
    }


SUITE_KEYS = ("name", "shard", "num_shards", "limit")  # runner settings, not reader arguments


def load_cases(suite_cfg: DictConfig) -> list[Case]:
    """The configured suite's cases: its first `limit`, then this shard's share."""
    for key in suite_cfg:
        if OmegaConf.is_missing(suite_cfg, key):
            name = suite_cfg.get("name", "")
            raise UserInputError(
                f"suite={name} needs suite.{key}=... (see configs/suite/{name}.yaml)"
            )
    kwargs = OmegaConf.to_container(suite_cfg, resolve=True)
    extra = {k: kwargs.pop(k, None) for k in SUITE_KEYS}
    cases = hydra.utils.instantiate(kwargs)
    if extra["limit"] is not None:
        cases = cases[: int(extra["limit"])]
    return select_shard(cases, extra["shard"] or 0, extra["num_shards"] or 1)


def select_shard(cases: list[Case], shard: int, num_shards: int) -> list[Case]:
    """Cases `shard`, `shard + num_shards`, ... (round-robin: every shard gets every edit type)."""
    if int(num_shards) < 1:
        raise UserInputError(f"suite.num_shards={num_shards} must be at least 1")
    if not 0 <= int(shard) < int(num_shards):
        raise UserInputError(
            f"suite.shard={shard} is outside 0..{int(num_shards) - 1} (suite.num_shards={num_shards})"
        )
    return cases[int(shard) :: int(num_shards)]


# --- shared by the file-based suites -------------------------------------------------------------


def check_unique(cases: list[Case], source: str) -> list[Case]:
    """`cases`, after refusing a case id that appears twice."""
    seen: set[str] = set()
    for case in cases:
        if case.case_id in seen:
            raise UserInputError(f"{source}: case id {case.case_id!r} appears twice")
        seen.add(case.case_id)
    return cases


def slug(text: str) -> str:
    """A file-name-safe form of `text` (at most 60 characters)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.")[:60] or "case"


def read_json(path: Path, what: str) -> Any:
    """Parsed JSON of `path`; a missing or invalid file is a `UserInputError` naming `what`."""
    if not path.is_file():
        raise UserInputError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path} is not valid JSON: {err}") from None


def resolve_image(name: str, folder: Path, images_dir: Path) -> Path:
    """An image named in a suite file: absolute as is, else under `images_dir`, else under
    `folder`; a missing file resolves under `images_dir` (its case fails when it runs)."""
    path = Path(name).expanduser()
    if path.is_absolute():
        return path
    for candidate in (images_dir / path, folder / path):
        if candidate.is_file():
            return candidate
    return images_dir / path


def pick_text(entry: dict, keys: tuple[str, ...], where: str, required: bool = True) -> str | None:
    """The text under the first of `keys` present in `entry` (None if absent and optional)."""
    for key in keys:
        if key in entry:
            value = entry[key]
            if not isinstance(value, str):
                raise UserInputError(f"{where}: {key!r} must be text, got {value!r}")
            return value
    if required:
        raise UserInputError(f"{where} has none of the keys {', '.join(keys)}")
    return None


# --- demo world ----------------------------------------------------------------------------------


def demo_suite(
    edit_types: Sequence[str] = (
        "colour",
        "shape",
        "position",
        "size",
        "background",
        "add",
        "remove",
    ),
    n: int = 4,
    seed: int = 0,
    resolution: int = 32,
) -> list[Case]:
    """`n` cases per edit type of the demo world (deterministic in `seed`), ids like "colour-003".

    `extra` of each case: `source_scene`, `target_scene` (`demo_world.scene.Scene`) and
    `target_image` (uint8 [H, W, 3], the ideal edit rendered with the same jitter and noise).
    """
    from demo_world.suite import EDIT_TYPES, make_suite

    types = [edit_types] if isinstance(edit_types, str) else list(edit_types)
    unknown = [t for t in types if t not in EDIT_TYPES]
    if unknown or not types:
        raise UserInputError(f"suite.edit_types={types}: choose from {', '.join(EDIT_TYPES)}")
    cases = []
    for edit_type in types:
        for c in make_suite(edit_type, int(n), int(seed), int(resolution)):
            extra = {
                "source_scene": c.source_scene,
                "target_scene": c.target_scene,
                "target_image": c.target_image,
            }
            cases.append(
                Case(c.case_id, c.image, c.source_prompt, c.target_prompt, c.mask, edit_type, extra)
            )
    return check_unique(cases, "suite=demo")
