"""Tables of a benchmark output folder, rebuilt from every `cases/<id>/result.json` under it.

`rebuild(root)` reads the result.json files of `root` and of every run below it (variant runs,
shards of any job), and writes

- `root/results.jsonl` and `root/results.csv`: every row (one per result of every case; failed
  cases give one row with `status=failed` and the error);
- `root/summary.csv`: one row per (method, variant, kind, setting, edit type), plus edit type
  "all", where `kind` separates edits from reconstructions and `setting` names the values of the
  swept parameters (e.g. "eta=0.7"). A parameter counts as swept for a method when its rows hold
  more than one value of it (`param.<name>` from the editor, `train.<name>` from train_overrides);
  prompts and seeds are never sweeps (seeds are averaged over). Of candidates a method ranks itself
  (Blended Diffusion: `param.rank`), only the best counts, as the method's output.

Summary columns: `n_cases`, `n_results`, `n_failed` (failed cases of the method/variant/edit type),
`success_rate` and `preservation_rate` (demo oracle), and the means of `clip_score`,
`one_minus_lpips`, `psnr`, `background_psnr`, `reconstruction_psnr`, `clip_image_similarity`,
`ssim`, `edit_region_clip_score`, `target_psnr` over the group's results (missing/NaN values are
left out), and `train_seconds`, `edit_seconds`, `time_seconds` averaged over its cases (one
measurement per case: a sweep's results share the case's time). Files are written atomically, so
shards finishing together never leave a torn table; the job that finishes last covers every case.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "find_results",
    "format_table",
    "is_setting_key",
    "load_rows",
    "rebuild",
    "scored",
    "setting_of",
    "summarize",
    "sweep_keys",
    "write_csv",
]

LEAD = [
    "case_id", "edit_type", "suite", "method", "base_model", "variant", "kind", "result_index",
    "label", "status", "error",
]  # fmt: skip
MEANS = [
    "clip_score", "one_minus_lpips", "psnr", "background_psnr", "reconstruction_psnr",
    "clip_image_similarity", "ssim", "edit_region_clip_score", "target_psnr",
]  # fmt: skip
# Per-result outputs and replicates, never settings: prompts, seeds, a ranked candidate's place/score.
# Any other `*prompt` parameter (e.g. Direct Inversion's `inversion_prompt`, each case's caption
# with invert_with_source) is per-case text too.
NOT_SWEPT = {
    "param.prompt",
    "param.source_prompt",
    "param.seed",
    "param.method",
    "param.rank",
    "param.score",
}
GROUP = ["method", "variant", "kind", "setting", "edit_type"]


def find_results(root: str | Path) -> list[Path]:
    """Every `.../cases/<id>/result.json` under `root`, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("result.json") if p.parent.parent.name == "cases")


def load_rows(root: str | Path) -> list[dict[str, Any]]:
    """All rows of all result.json files under `root` (unreadable files are skipped, logged)."""
    rows = []
    for path in find_results(root):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            log.warning("skipping unreadable %s: %s", path, err)
            continue
        rows += record.get("rows", [])
    return rows


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def write_csv(path: Path, rows: list[dict[str, Any]], lead: list[str] = LEAD) -> None:
    """CSV with the `lead` columns first, then every other key in first-seen order."""
    columns = [c for c in lead if any(c in r for r in rows)]
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    _atomic_text(path, buffer.getvalue())


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _mean(values) -> float | None:
    kept = [v for v in (_number(x) for x in values) if v is not None]
    return sum(kept) / len(kept) if kept else None


def _rate(values) -> float | None:
    kept = [bool(v) for v in values if isinstance(v, bool)]
    return sum(kept) / len(kept) if kept else None


def scored(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that represent a method's output: all of them, except that of candidates ranked
    by the method itself (Blended Diffusion's `param.rank`) only the best (rank 1) counts."""
    return [r for r in rows if r.get("param.rank") in (None, 1)]


def is_setting_key(key: str) -> bool:
    """Whether a row column can name a setting: `param.*` / `train.*`, but no prompt or seed."""
    return (
        key.startswith(("param.", "train.")) and key not in NOT_SWEPT and not key.endswith("prompt")
    )


def sweep_keys(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per method, the `param.*` / `train.*` columns with more than one value among its rows."""
    values: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    ok = [r for r in rows if r.get("status") == "ok"]
    for row in ok:
        for key in row:
            if is_setting_key(key):
                values[row["method"]][key]  # noqa: B018 - registers the key
    for row in ok:
        for key in values[row["method"]]:
            values[row["method"]][key].add(json.dumps(row.get(key), sort_keys=True))
    return {m: sorted(k for k, v in keys.items() if len(v) > 1) for m, keys in values.items()}


def _short(key: str) -> str:
    return key.removeprefix("param.")


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting_of(row: dict[str, Any], keys: list[str]) -> str:
    """ "eta=0.7 train.num_inner_steps=5" for the swept `keys` of a row ("" without sweeps)."""
    return " ".join(f"{_short(k)}={_text(row.get(k))}" for k in keys)


def _sort_value(value: Any) -> tuple:
    number = _number(value)
    return (0, number, "") if number is not None else (1, 0.0, str(value))


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows (see the module docstring), grouped and ordered by method, variant, kind,
    swept values and edit type (in first-seen order, "all" last)."""
    rows = scored(rows)
    sweeps = sweep_keys(rows)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    order: dict[tuple, tuple] = {}
    edit_types = list(dict.fromkeys(r.get("edit_type", "") for r in rows))
    failed: dict[tuple, set[str]] = defaultdict(set)
    for row in rows:
        m, v, e = row.get("method", ""), row.get("variant", ""), row.get("edit_type", "")
        if row.get("status") != "ok":
            failed[(m, v, e)].add(row["case_id"])
            failed[(m, v, "all")].add(row["case_id"])
            continue
        keys = sweeps.get(m, [])
        setting = setting_of(row, keys)
        sort = tuple(_sort_value(row.get(k)) for k in keys)
        for edit_type in (e, "all"):
            key = (m, v, row.get("kind", "edit"), setting, edit_type)
            groups[key].append(row)
            order[key] = (m, v, row.get("kind", "edit") != "edit", sort)
    for m, v, e in list(failed):  # groups with failures only
        if not any(k[0] == m and k[1] == v and k[4] == e for k in groups):
            groups[(m, v, "edit", "", e)] = []
            order[(m, v, "edit", "", e)] = (m, v, False, ())
    out = []

    def rank(key):
        e = key[4]
        return (*order[key], len(edit_types) if e == "all" else edit_types.index(e))

    for key in sorted(groups, key=rank):
        members = groups[key]
        per_case = {r["case_id"]: r for r in members}.values()
        summary = dict(zip(GROUP, key))
        summary.update(
            n_cases=len(per_case),
            n_results=len(members),
            n_failed=len(failed.get((key[0], key[1], key[4]), ())) if key[2] == "edit" else 0,
            success_rate=_rate(r.get("success") for r in members),
            preservation_rate=_rate(r.get("preserved") for r in members),
        )
        for name in MEANS:
            summary[name] = _mean(r.get(name) for r in members)
        train = _mean(r.get("train_seconds") for r in per_case)
        edit = _mean(r.get("edit_seconds") for r in per_case)
        summary.update(
            train_seconds=train,
            edit_seconds=edit,
            time_seconds=None if edit is None else edit + (train or 0.0),
        )
        out.append(summary)
    return out


TABLE = [
    ("method", "method", "s"), ("variant", "variant", "s"), ("kind", "kind", "s"),
    ("setting", "setting", "s"), ("edit_type", "edit type", "s"), ("n_cases", "cases", "d"),
    ("n_failed", "failed", "d"), ("success_rate", "success", ".2f"),
    ("preservation_rate", "preserved", ".2f"), ("clip_score", "CLIP", ".2f"),
    ("one_minus_lpips", "1-LPIPS", ".3f"), ("psnr", "PSNR", ".2f"),
    ("background_psnr", "bg PSNR", ".2f"), ("time_seconds", "time s", ".2f"),
]  # fmt: skip


def format_table(summary: list[dict[str, Any]]) -> str:
    """The summary as an aligned text table (columns that are empty everywhere are dropped)."""
    if not summary:
        return "(no results)"
    columns = [c for c in TABLE if any(_cell(r.get(c[0])) not in ("", None) for r in summary)]
    cells = [[title for _, title, _ in columns]]
    for row in summary:
        line = []
        for key, _, fmt in columns:
            value = row.get(key)
            line.append("" if _cell(value) == "" else format(value, fmt))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rebuild(root: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rewrite results.jsonl/csv and summary.csv of `root` from its result.json files."""
    root = Path(root)
    rows = load_rows(root)
    summary = summarize(rows)
    if rows:
        lines = "".join(json.dumps(r, default=str) + "\n" for r in rows)
        _atomic_text(root / "results.jsonl", lines)
        write_csv(root / "results.csv", rows)
        write_csv(root / "summary.csv", summary, GROUP)
    return rows, summary
