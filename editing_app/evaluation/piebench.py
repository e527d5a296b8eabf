"""PIE-Bench (Ju et al. 2023, "Direct Inversion: Boosting Diffusion-based Editing with 3 Lines of
Code"): 700 images, 10 edit types, source/target prompts and edit masks.

Layout (`suite.path=DIR`): `DIR/mapping_file.json` and the images under `DIR/annotation_images/`.
The mapping file is one JSON object keyed by case id ("000000000000"); each entry has

    image_path          "0_random_140/000000000000.jpg"  (relative to annotation_images/)
    original_prompt     "a [cat] sitting on a wooden chair"   (brackets mark what the edit changes)
    editing_prompt      "a [dog] sitting on a wooden chair"
    editing_instruction "Change the cat to a dog"
    editing_type_id     "1"        (see PIEBENCH_EDIT_TYPES)
    blended_word        "cat dog"  (source and target words for Prompt-to-Prompt's LocalBlend)
    mask                [start, length, ...]  RLE over the 512 x 512 image (editing_app.evaluation.rle)

Prompts are used without their brackets; the bracketed words of each prompt are kept as the case's
blend words (`extra["blend_words"] = [source words, target words]`). Masks are decoded at the
image's own size when the case runs, with the reference's border rule by default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from editing.errors import UserInputError
from editing_app.evaluation.rle import RleMask
from editing_app.evaluation.suites import (
    Case,
    check_unique,
    pick_text,
    read_json,
    resolve_image,
    slug,
)

__all__ = ["PIEBENCH_EDIT_TYPES", "piebench_suite", "split_brackets"]

# PIE-Bench's `editing_type_id` -> edit type (its folder names without the counts).
PIEBENCH_EDIT_TYPES: dict[str, str] = {
    "0": "random",
    "1": "change_object",
    "2": "add_object",
    "3": "delete_object",
    "4": "change_attribute_content",
    "5": "change_attribute_pose",
    "6": "change_attribute_color",
    "7": "change_attribute_material",
    "8": "change_background",
    "9": "change_style",
}


def split_brackets(prompt: str) -> tuple[str, list[str]]:
    """PIE-Bench prompt -> (prompt without brackets, the bracketed words).

    "a [white cat] sitting" -> ("a white cat sitting", ["white", "cat"]).
    """
    inside = re.findall(r"\[([^\[\]]*)\]", prompt)
    plain = re.sub(r"[\[\]]", "", prompt)
    return " ".join(plain.split()), [w for part in inside for w in part.split()]


def _edit_type(value: Any, where: str) -> str:
    key = str(value).strip()
    if key not in PIEBENCH_EDIT_TYPES:
        raise UserInputError(f"{where}: editing_type_id {value!r} is not one of 0..9")
    return PIEBENCH_EDIT_TYPES[key]


def _wanted(edit_types: Sequence[str | int] | None) -> set[str] | None:
    if not edit_types:
        return None
    wanted = {PIEBENCH_EDIT_TYPES.get(str(t), str(t)) for t in edit_types}
    unknown = wanted - set(PIEBENCH_EDIT_TYPES.values())
    if unknown:
        raise UserInputError(
            f"suite.edit_types: unknown {sorted(unknown)}; choose from "
            f"{', '.join(PIEBENCH_EDIT_TYPES.values())} (or ids 0..9)"
        )
    return wanted


def _mask(counts: Any, border: bool, where: str) -> RleMask | None:
    if counts is None:
        return None
    if (
        not isinstance(counts, list)
        or len(counts) % 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts)
    ):
        raise UserInputError(f"{where}: mask must be RLE [start, length, ...] of integers >= 0")
    return RleMask(tuple(counts), bool(border))


def piebench_suite(
    path: str,
    mapping_file: str = "mapping_file.json",
    images_dir: str = "annotation_images",
    edit_types: Sequence[str | int] | None = None,
    mask_border: bool = True,
) -> list[Case]:
    """PIE-Bench's cases from `<path>/<mapping_file>` with images under `<path>/<images_dir>`.

    Args:
        edit_types: keep only these edit types (names of `PIEBENCH_EDIT_TYPES` or ids 0..9).
        mask_border: decode masks as the reference does (the image border marked as edited).

    `extra` of each case: `blend_words`, `blended_word` (the file's own string),
    `editing_instruction`, `editing_type_id`, `image_path`.
    """
    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        raise UserInputError(f"suite.path={folder} is not a folder (PIE-Bench's data folder)")
    map_path = Path(mapping_file) if Path(mapping_file).is_absolute() else folder / mapping_file
    mapping = read_json(map_path, "PIE-Bench mapping file (suite.mapping_file)")
    if not isinstance(mapping, dict) or not mapping:
        raise UserInputError(f"{map_path} must hold a non-empty JSON object keyed by case id")
    wanted = _wanted(edit_types)
    cases = []
    for key, entry in mapping.items():
        where = f"{map_path.name} case {key}"
        if not isinstance(entry, dict):
            raise UserInputError(f"{where} must be an object, got {type(entry).__name__}")
        edit_type = _edit_type(entry.get("editing_type_id"), where)
        if wanted is not None and edit_type not in wanted:
            continue
        image = pick_text(entry, ("image_path",), where)
        source, source_words = split_brackets(pick_text(entry, ("original_prompt",), where))
        target, target_words = split_brackets(pick_text(entry, ("editing_prompt",), where))
        cases.append(
            Case(
                case_id=slug(str(key)),
                image=resolve_image(image, folder, folder / images_dir),
                source_prompt=source,
                target_prompt=target,
                mask=_mask(entry.get("mask"), mask_border, where),
                edit_type=edit_type,
                extra={
                    "blend_words": [source_words, target_words],
                    "blended_word": entry.get("blended_word", ""),
                    "editing_instruction": entry.get("editing_instruction", ""),
                    "editing_type_id": str(entry.get("editing_type_id")),
                    "image_path": image,
                },
            )
        )
    return check_unique(cases, str(map_path))
