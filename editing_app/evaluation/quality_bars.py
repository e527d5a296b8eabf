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
        f"Imagic on the demo ({folder})\n{'edit':10s} {'cases':>5s} {'reached (bar 70%)':>18s} {'others kept (bar 80%)':>22s} {'eta=0 PSNR (bar 25 dB)':>23s}"
    )
    for k, v in table.items():
        print(
            f"{k:10s} {v['cases']:5d} {_pct(v['target_reached']):>18s} {_pct(v['kept_given_reached']):>22s} {v['eta0_psnr']:20.1f} dB"
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
        f"Null-text inversion + Prompt-to-Prompt on the demo\n{'inversion':10s} {'cases':>5s} {'recon PSNR':>10s} {'colour reached (bar 80%)':>25s} {'kept (bar 90%)':>15s}"
    )
    for k, v in out.items():
        print(
            f"{k:10s} {v['cases']:5d} {v['reconstruction_psnr']:7.1f} dB {_pct(v['success']):>25s} {_pct(v['preserved']):>15s}"
        )
    print(f"null-text - DDIM reconstruction: {gain:+.1f} dB (bar: >= +5 dB)")
    out["gain_db"] = gain
    return out


def direct_inversion(folder: str) -> dict:
    """Per noise-merge lambda: fidelity (PSNR, 1 - LPIPS to the input) and edit success."""
    groups: dict[float, list[dict]] = defaultdict(list)
    for r in _ok(_rows(folder)):
        groups[float(r["param.noise_lambda"])].append(r)
    print(
        f"Direct Inversion lambda sweep ({folder})\n{'lambda':>6s} {'n':>4s} {'PSNR':>7s} {'1-LPIPS':>8s} {'reached':>8s} {'reached+position kept':>22s}"
    )
    table = {}
    for lam in sorted(groups):
        rs = groups[lam]
        reached = _mean([float(bool(r["success"])) for r in rs])
        with_position = _mean(
            [float(bool(r["success"]) and bool(r["oracle_position"])) for r in rs]
        )
        table[lam] = {
            "psnr": _mean(r["psnr"] for r in rs),
            "one_minus_lpips": _mean(r["one_minus_lpips"] for r in rs),
            "success": reached,
            "success_position_kept": with_position,
        }
        v = table[lam]
        print(
            f"{lam:6.2f} {len(rs):4d} {v['psnr']:7.2f} {v['one_minus_lpips']:8.3f} {_pct(reached):>8s} {_pct(with_position):>22s}"
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
        f"background bit-exact: {_pct(exact)} (bar 100%); edit reached: {_pct(success)}; requested shape+colour present: {_pct(obj)} (bar 70%)"
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
