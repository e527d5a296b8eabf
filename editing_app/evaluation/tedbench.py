"""TEdBench (Kawar et al., Imagic, CVPR 2023): 100 (image, target text) pairs, as shipped.

The authors distribute it as a folder `tedbench/` holding

    input_list.json     [{"img_name": "bird.jpeg", "target_text": "A photo of a bird spreading wings."}, ...]
    originals/          bird.jpeg, ...

Accepted here (`suite.path=.../tedbench`):
- the list file `suite.list_file` (default `input_list.json`, relative to the folder or absolute):
  a JSON list whose entries are either objects with the image under `img_name` (or `image`), the
  target text under `target_text` (or `target_prompt`) and optionally a caption under
  `source_text` (or `source_prompt`), or arrays `[image, target_text]` /
  `[image, target_text, source_text]`;
- image names relative to `suite.images_dir` (default `originals/`), else to the folder itself
  (so `"originals/bird.jpeg"` works too), or absolute paths.
TEdBench has no captions and no masks: entries without a caption get `suite.source_prompt` ("").
Case ids are `<index>_<image stem>` (the list edits some images twice).
"""

from __future__ import annotations

from pathlib import Path

from editing.errors import UserInputError
from editing_app.evaluation.suites import (
    Case,
    check_unique,
    pick_text,
    read_json,
    resolve_image,
    slug,
)

__all__ = ["tedbench_suite"]


def tedbench_suite(
    path: str,
    list_file: str = "input_list.json",
    images_dir: str = "originals",
    source_prompt: str = "",
) -> list[Case]:
    """The cases of a TEdBench folder (see the module docstring for the accepted layout)."""
    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        raise UserInputError(f"suite.path={folder} is not a folder (TEdBench's tedbench/ folder)")
    list_path = Path(list_file) if Path(list_file).is_absolute() else folder / list_file
    entries = read_json(list_path, "TEdBench list (suite.list_file)")
    if not isinstance(entries, list) or not entries:
        raise UserInputError(f"{list_path} must hold a non-empty JSON list of edits")
    cases = []
    for i, entry in enumerate(entries):
        where = f"{list_path.name} entry {i}"
        if isinstance(entry, dict):
            name = pick_text(entry, ("img_name", "image"), where)
            target = pick_text(entry, ("target_text", "target_prompt"), where)
            source = pick_text(entry, ("source_text", "source_prompt"), where, required=False)
        elif (
            isinstance(entry, list)
            and len(entry) in (2, 3)
            and all(isinstance(v, str) for v in entry)
        ):
            name, target = entry[0], entry[1]
            source = entry[2] if len(entry) == 3 else None
        else:
            raise UserInputError(
                f"{where} must be an object with img_name and target_text, or a list "
                f"[image, target_text] / [image, target_text, source_text]; got {entry!r}"
            )
        cases.append(
            Case(
                case_id=f"{i:03d}_{slug(Path(name).stem)}",
                image=resolve_image(name, folder, folder / images_dir),
                source_prompt=source if source is not None else str(source_prompt or ""),
                target_prompt=target,
            )
        )
    return check_unique(cases, str(list_path))
