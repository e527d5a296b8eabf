"""The demo world's quality bars, computed from evaluate.py output folders.

    python -m editing_app.evaluation.quality_bars imagic DIR
    python -m editing_app.evaluation.quality_bars null_text DIR_NULL_TEXT DIR_DDIM
    python -m editing_app.evaluation.quality_bars direct_inversion DIR
    python -m editing_app.evaluation.quality_bars blended DIR

Each reads `results.jsonl` (rebuilt by evaluate.py) and prints the measured numbers next to the bar;
nothing is tuned here, it only aggregates what evaluate.py recorded.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

# The bars the demo world's methods are held to (fractions of cases; dB).
BARS = {
    "imagic_shape_reached": 0.80,  # the target shape for some eta in [0.6, 1]
    "imagic_position_reached": 0.70,
    "imagic_kept": 0.80,  # everything else, at the first eta that reached it
    "imagic_eta0_psnr": 25.0,
    "null_text_reached": 0.90,  # the colour swap
    "null_text_kept": 0.90,
    "null_text_gain_db": 5.0,  # reconstruction over DDIM inversion's, guidance 7.5
    "direct_inversion_reached_and_kept": 0.80,  # at some lambda
    "blended_background_exact": 1.0,
    "blended_object": 0.90,  # the requested shape and colour inside the mask
}


def _rows(folder: str | Path) -> list[dict]:
    path = Path(folder) / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ok(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok"]


def _mean(values) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else float("nan")


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f}%"


def imagic(folder: str) -> dict:
    """Per case: the target reached for some eta in [0.6, 1.0] (and, for the first such eta, the
    other attributes kept); eta = 0 reconstruction PSNR against the input."""
    by_case: dict[str, list[dict]] = defaultdict(list)
    for r in _ok(_rows(folder)):
        by_case[r["case_id"]].append(r)
    table = {}
    for edit_type in sorted({rs[0]["edit_type"] for rs in by_case.values()}):
        cases = [rs for rs in by_case.values() if rs[0]["edit_type"] == edit_type]
        reached, kept, recon = 0, 0, []
        for rs in cases:
            window = sorted(
                (r for r in rs if 0.6 <= float(r["param.eta"]) <= 1.0), key=lambda r: r["param.eta"]
            )
            hits = [r for r in window if r["success"]]
            if hits:
                reached += 1
                kept += bool(hits[0]["preserved"])
            recon += [r["psnr"] for r in rs if float(r["param.eta"]) == 0.0]
        n = len(cases)
        table[edit_type] = {
            "cases": n,
            "target_reached": reached / n,
            "kept_given_reached": kept / reached if reached else float("nan"),
            "eta0_psnr": _mean(recon),
        }
    print(
        f"Imagic on the demo ({folder}); bars: reached {_pct(BARS['imagic_shape_reached'])} (shape), {_pct(BARS['imagic_position_reached'])} (position), kept {_pct(BARS['imagic_kept'])}, eta=0 {BARS['imagic_eta0_psnr']:.0f} dB\n{'edit':10s} {'cases':>5s} {'reached':>8s} {'others kept':>12s} {'eta=0 PSNR':>11s}"
    )
    for k, v in table.items():
        print(
            f"{k:10s} {v['cases']:5d} {_pct(v['target_reached']):>8s} {_pct(v['kept_given_reached']):>12s} {v['eta0_psnr']:8.1f} dB"
        )
    return table


def null_text(folder: str, ddim_folder: str) -> dict:
    """Reconstruction PSNR (null-text vs DDIM inversion, guidance 7.5) and the colour-swap edit."""
    out = {}
    for name, f in (("null_text", folder), ("ddim", ddim_folder)):
        rows = _ok(_rows(f))
        recon = [r["reconstruction_psnr"] for r in rows if r.get("is_reconstruction")]
        edits = [r for r in rows if not r.get("is_reconstruction")]
        out[name] = {
            "cases": len({r["case_id"] for r in rows}),
            "reconstruction_psnr": _mean(recon),
            "success": _mean([float(bool(r["success"])) for r in edits]),
            "preserved": _mean([float(bool(r["preserved"])) for r in edits]),
        }
    gain = out["null_text"]["reconstruction_psnr"] - out["ddim"]["reconstruction_psnr"]
    print(
        f"Null-text inversion + Prompt-to-Prompt on the demo; bars: reached {_pct(BARS['null_text_reached'])}, kept {_pct(BARS['null_text_kept'])}\n{'inversion':10s} {'cases':>5s} {'recon PSNR':>10s} {'colour reached':>15s} {'kept':>6s}"
    )
    for k, v in out.items():
        print(
            f"{k:10s} {v['cases']:5d} {v['reconstruction_psnr']:7.1f} dB {_pct(v['success']):>15s} {_pct(v['preserved']):>6s}"
        )
    print(
        f"null-text - DDIM reconstruction: {gain:+.1f} dB (bar: >= +{BARS['null_text_gain_db']:.0f} dB)"
    )
    out["gain_db"] = gain
    return out


def direct_inversion(folder: str) -> dict:
    """Per noise-merge lambda: fidelity (PSNR, 1 - LPIPS to the input), edit success, success
    with the position kept, and success with everything else kept (`preserved`)."""
    groups: dict[float, list[dict]] = defaultdict(list)
    for r in _ok(_rows(folder)):
        groups[float(r["param.noise_lambda"])].append(r)
    print(
        f"Direct Inversion lambda sweep ({folder}); bar: reached + all kept {_pct(BARS['direct_inversion_reached_and_kept'])} at some lambda\n{'lambda':>6s} {'n':>4s} {'PSNR':>7s} {'1-LPIPS':>8s} {'reached':>8s} {'+position kept':>15s} {'+all kept':>10s}"
    )
    table = {}
    for lam in sorted(groups):
        rs = groups[lam]
        reached = _mean([float(bool(r["success"])) for r in rs])
        with_position = _mean(
            [float(bool(r["success"]) and bool(r["oracle_position"])) for r in rs]
        )
        with_all = _mean([float(bool(r["success"]) and bool(r["preserved"])) for r in rs])
        table[lam] = {
            "psnr": _mean(r["psnr"] for r in rs),
            "one_minus_lpips": _mean(r["one_minus_lpips"] for r in rs),
            "success": reached,
            "success_position_kept": with_position,
            "success_all_kept": with_all,
        }
        v = table[lam]
        print(
            f"{lam:6.2f} {len(rs):4d} {v['psnr']:7.2f} {v['one_minus_lpips']:8.3f} {_pct(reached):>8s} {_pct(with_position):>15s} {_pct(with_all):>10s}"
        )
    return table


def blended(folder: str) -> dict:
    """Rank-1 candidates: every pixel outside the mask unchanged, the requested object inside."""
    rows = [r for r in _ok(_rows(folder)) if int(r.get("param.rank", 1) or 1) == 1]
    exact = _mean(
        [
            float(r["background_psnr"] is not None and math.isinf(float(r["background_psnr"])))
            for r in rows
        ]
    )
    success = _mean([float(bool(r["success"])) for r in rows])
    obj = _mean([float(bool(r.get("oracle_shape")) and bool(r.get("oracle_colour"))) for r in rows])
    print(f"Blended Diffusion on the demo ({folder}): {len(rows)} cases")
    print(
        f"background bit-exact: {_pct(exact)} (bar {_pct(BARS['blended_background_exact'])}); edit reached: {_pct(success)}; requested shape+colour present: {_pct(obj)} (bar {_pct(BARS['blended_object'])})"
    )
    return {
        "cases": len(rows),
        "background_exact": exact,
        "success": success,
        "object_present": obj,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("method", choices=["imagic", "null_text", "direct_inversion", "blended"])
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args(argv)
    {
        "imagic": imagic,
        "null_text": null_text,
        "direct_inversion": direct_inversion,
        "blended": blended,
    }[args.method](*args.folders)


if __name__ == "__main__":
    main()
