"""The papers' evaluation figures from a benchmark folder, as PNGs with their numbers in CSVs.

    python -m editing_app.evaluation.plots O [--out DIR]      # or: python evaluate.py ... plot=true

- Editability-fidelity curves (Imagic Fig. 9, Direct Inversion Fig. 7): for every method and every
  parameter swept in its rows (Imagic's `eta`, Direct Inversion's `noise_lambda` and
  `guidance_scale`, null-text's `train.num_inner_steps`, ...), one point per value: the mean CLIP
  score against the target text (editability, y) versus the mean 1 - LPIPS to the input (fidelity,
  x), over every edit result with that value; other swept parameters give separate lines.
  `plots/editability_fidelity_<method>_<parameter>.png`, all points in
  `plots/editability_fidelity.csv`. A method without sweeps is one point in
  `plots/editability_fidelity_methods.png` (every method/setting side by side).
- Reconstruction PSNR per inversion (the null-text paper's ablation): the mean PSNR to the input
  of the reconstruction results, per `param.inversion` (null_text / ddim / negative_prompt) and
  stage setting, with the standard deviation as error bars: `plots/reconstruction_psnr.png` and
  `.csv`.

Rows come from every result.json under O (`editing_app.evaluation.summary.load_rows`), so runs of
different methods or variants written below one folder are compared in one figure.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from editing_app.evaluation.summary import load_rows, scored, setting_of, sweep_keys, write_csv

log = logging.getLogger(__name__)

__all__ = ["editability_fidelity_points", "make_plots", "reconstruction_points"]


def _value(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    return float(v)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _sortable(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def editability_fidelity_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per (method, variant, parameter, other swept values, parameter value)."""
    edits = [r for r in scored(rows) if r.get("status") == "ok" and r.get("kind", "edit") == "edit"]
    sweeps = sweep_keys(edits)
    points = []
    for method, keys in sorted(sweeps.items()):
        mine = [r for r in edits if r["method"] == method]
        for key in keys or [None]:
            others = [k for k in keys if k != key]
            groups: dict[tuple, list[dict]] = defaultdict(list)
            for r in mine:
                groups[
                    (r.get("variant", ""), setting_of(r, others), r.get(key) if key else None)
                ].append(r)
            for (variant, line, value), members in sorted(
                groups.items(), key=lambda kv: (kv[0][0], kv[0][1], _sortable(kv[0][2]))
            ):
                clip = [v for v in (_value(r, "clip_score") for r in members) if v is not None]
                fid = [v for v in (_value(r, "one_minus_lpips") for r in members) if v is not None]
                points.append(
                    {
                        "method": method,
                        "variant": variant,
                        "parameter": (key or "").removeprefix("param."),
                        "value": value,
                        "line": line,
                        "clip_score": _mean_std(clip)[0],
                        "one_minus_lpips": _mean_std(fid)[0],
                        "n": len(members),
                    }
                )
    return points


def reconstruction_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std of reconstruction PSNR per (method, inversion, stage setting)."""
    recon = [r for r in rows if r.get("status") == "ok" and r.get("kind") == "reconstruction"]
    sweeps = {
        m: [k for k in keys if k != "param.inversion"] for m, keys in sweep_keys(recon).items()
    }
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in recon:
        setting = setting_of(r, sweeps.get(r["method"], []))
        key = (r["method"], str(r.get("param.inversion", "")), setting)
        value = _value(r, "reconstruction_psnr")
        if value is not None:
            groups[key].append(value)
    points = []
    for (method, inversion, setting), values in sorted(groups.items()):
        mean, std = _mean_std(values)
        points.append(
            {
                "method": method,
                "inversion": inversion,
                "setting": setting,
                "psnr": mean,
                "psnr_std": std,
                "n": len(values),
            }
        )
    return points


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve_plot(points: list[dict[str, Any]], title: str, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    lines: dict[tuple, list[dict]] = defaultdict(list)
    for p in points:
        lines[(p["variant"], p["line"])].append(p)
    for (variant, line), pts in lines.items():
        xs = [p["one_minus_lpips"] for p in pts]
        ys = [p["clip_score"] for p in pts]
        label = " ".join(t for t in (variant, line) if t) or None
        ax.plot(xs, ys, marker="o", label=label)
        for p in pts:
            if p["parameter"]:
                value = f"{p['value']:g}" if isinstance(p["value"], float) else str(p["value"])
                ax.annotate(value, (p["one_minus_lpips"], p["clip_score"]), fontsize=8,
                            textcoords="offset points", xytext=(4, 4))  # fmt: skip
    ax.set_xlabel("fidelity: 1 - LPIPS to the input")
    ax.set_ylabel("editability: CLIP score to the target text")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if any(label for label, _ in lines) or any(line for _, line in lines):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _methods_plot(points: list[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for p in points:
        ax.scatter([p["one_minus_lpips"]], [p["clip_score"]])
        name = " ".join(t for t in (p["method"], p["variant"], p["line"]) if t)
        if p["parameter"]:
            name += f" {p['parameter']}={p['value']}"
        ax.annotate(name, (p["one_minus_lpips"], p["clip_score"]), fontsize=7,
                    textcoords="offset points", xytext=(4, 4))  # fmt: skip
    ax.set_xlabel("fidelity: 1 - LPIPS to the input")
    ax.set_ylabel("editability: CLIP score to the target text")
    ax.set_title("methods", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _reconstruction_plot(points: list[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(points) + 2), 4.0))
    labels = [
        "\n".join(t for t in (p["inversion"] or p["method"], p["setting"]) if t) for p in points
    ]
    ax.bar(range(len(points)), [p["psnr"] for p in points], yerr=[p["psnr_std"] for p in points],
           capsize=4, color="tab:blue")  # fmt: skip
    ax.set_xticks(range(len(points)), labels, fontsize=8)
    ax.set_ylabel("reconstruction PSNR to the input (dB)")
    ax.set_title("reconstruction per inversion", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _usable(p: dict[str, Any]) -> bool:
    return p["clip_score"] is not None and p["one_minus_lpips"] is not None


def make_plots(root: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the figures and their CSVs for the rows under `root`; returns the files written."""
    root = Path(root)
    out = Path(out_dir) if out_dir else root / "plots"
    rows = load_rows(root)
    written: list[Path] = []
    points = editability_fidelity_points(rows)
    if points:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "editability_fidelity.csv", points, [])
        written.append(out / "editability_fidelity.csv")
        usable = [p for p in points if _usable(p)]
        if len(usable) < len(points):
            log.warning(
                "%d editability-fidelity points lack a CLIP score or LPIPS (no CLIP: give "
                "clip.path=...; LPIPS needs images of at least 31 px): they are not drawn",
                len(points) - len(usable),
            )
        curves: dict[tuple, list[dict]] = defaultdict(list)
        for p in usable:
            curves[(p["method"], p["parameter"])].append(p)
        for (method, parameter), pts in curves.items():
            if not parameter:
                continue
            path = out / f"editability_fidelity_{method}_{parameter.replace('.', '_')}.png"
            _curve_plot(pts, f"{method}: {parameter}", path)
            written.append(path)
        if usable:
            path = out / "editability_fidelity_methods.png"
            _methods_plot(usable, path)
            written.append(path)
    recon = [p for p in reconstruction_points(rows) if p["psnr"] is not None]
    if recon:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "reconstruction_psnr.csv", recon, [])
        _reconstruction_plot(recon, out / "reconstruction_psnr.png")
        written += [out / "reconstruction_psnr.csv", out / "reconstruction_psnr.png"]
    if not written:
        log.warning("no results under %s to plot", root)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m editing_app.evaluation.plots",
        description="Editability-fidelity and reconstruction plots of an evaluate.py output folder.",
    )
    parser.add_argument("output_dir", help="the output_dir of evaluate.py (searched recursively)")
    parser.add_argument("--out", default=None, help="where to write (default: OUTPUT_DIR/plots)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not Path(args.output_dir).is_dir():
        print(f"error: {args.output_dir} is not a folder", file=sys.stderr, flush=True)
        return 2
    for path in make_plots(args.output_dir, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
