"""The numbers behind the evaluation figures: result rows aggregated over cases.

Every point is a mean over cases of per-case means (seeds and other replicates of one case are
averaged first, so a case with more results does not weigh more), with the standard deviation over
cases beside it (`*_std`, None for a single case) and the number of cases (`n_cases`) and results
(`n`). A setting is the values of a method's swept parameters (`summary.sweep_keys`); per-case text
(prompts) and seeds are never settings, so each figure has one point per (method, variant,
setting), never one per case.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from editing_app.evaluation.summary import scored, setting_of, sweep_keys

__all__ = [
    "case_mean_std",
    "editability_fidelity_points",
    "method_points",
    "reconstruction_points",
]


def _value(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    return float(v)


def case_mean_std(
    members: list[dict[str, Any]], key: str
) -> tuple[float | None, float | None, int]:
    """(mean over cases, std over cases or None, number of cases) of `key`: each case's rows are
    averaged first; rows without a finite value are left out."""
    per_case: dict[str, list[float]] = defaultdict(list)
    for r in members:
        v = _value(r, key)
        if v is not None:
            per_case[str(r.get("case_id", ""))].append(v)
    means = [sum(vs) / len(vs) for vs in per_case.values()]
    if not means:
        return None, None, 0
    mean = sum(means) / len(means)
    if len(means) < 2:
        return mean, None, 1
    return mean, math.sqrt(sum((m - mean) ** 2 for m in means) / len(means)), len(means)


def _sortable(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def _edits(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in scored(rows) if r.get("status") == "ok" and r.get("kind", "edit") == "edit"]


def _scores(members: list[dict[str, Any]]) -> dict[str, Any]:
    clip, clip_std, n_clip = case_mean_std(members, "clip_score")
    fid, fid_std, n_fid = case_mean_std(members, "one_minus_lpips")
    return {
        "clip_score": clip,
        "clip_score_std": clip_std,
        "one_minus_lpips": fid,
        "one_minus_lpips_std": fid_std,
        "n_cases": min(n_clip, n_fid),
        "n": len(members),
    }


def editability_fidelity_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Curve points: per method and swept parameter, one point per (variant, the other swept
    values = `line`, parameter value); methods without sweeps give one point (parameter "")."""
    edits = _edits(rows)
    points = []
    for method, keys in sorted(sweep_keys(edits).items()):
        mine = [r for r in edits if r["method"] == method]
        for key in keys or [None]:
            others = [k for k in keys if k != key]
            groups: dict[tuple, list[dict]] = defaultdict(list)
            for r in mine:
                value = r.get(key) if key else None
                groups[(r.get("variant", ""), setting_of(r, others), value)].append(r)
            for (variant, line, value), members in sorted(
                groups.items(), key=lambda kv: (kv[0][0], kv[0][1], _sortable(kv[0][2]))
            ):
                points.append(
                    {
                        "method": method,
                        "variant": variant,
                        "parameter": (key or "").removeprefix("param."),
                        "value": value,
                        "line": line,
                        **_scores(members),
                    }
                )
    return points


def method_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The methods figure: exactly one point per (method, variant, setting), where the setting
    names every swept value ("" without sweeps), in method, variant, swept-value order."""
    edits = _edits(rows)
    sweeps = sweep_keys(edits)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    order: dict[tuple, tuple] = {}
    for r in edits:
        keys = sweeps.get(r["method"], [])
        key = (r["method"], r.get("variant", ""), setting_of(r, keys))
        groups[key].append(r)
        order[key] = (key[0], key[1], tuple(_sortable(r.get(k)) for k in keys))
    return [
        {"method": m, "variant": v, "setting": s, **_scores(groups[(m, v, s)])}
        for m, v, s in sorted(groups, key=order.__getitem__)
    ]


def reconstruction_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over cases of reconstruction PSNR per (method, inversion, stage setting)."""
    recon = [r for r in rows if r.get("status") == "ok" and r.get("kind") == "reconstruction"]
    sweeps = {
        m: [k for k in keys if k != "param.inversion"] for m, keys in sweep_keys(recon).items()
    }
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in recon:
        setting = setting_of(r, sweeps.get(r["method"], []))
        groups[(r["method"], str(r.get("param.inversion", "")), setting)].append(r)
    points = []
    for (method, inversion, setting), members in sorted(groups.items()):
        mean, std, n_cases = case_mean_std(members, "reconstruction_psnr")
        if n_cases == 0:
            continue
        points.append(
            {
                "method": method,
                "inversion": inversion,
                "setting": setting,
                "psnr": mean,
                "psnr_std": std,
                "n_cases": n_cases,
                "n": len(members),
            }
        )
    return points
