"""The papers' evaluation figures from a benchmark folder, as PNGs with their numbers in CSVs.

    python -m editing_app.evaluation.plots O [--out DIR]      # or: python evaluate.py ... plot=true

- Editability-fidelity curves (Imagic Fig. 9, Direct Inversion Fig. 7): for every method and every
  parameter swept in its rows (Imagic's `eta`, Direct Inversion's `noise_lambda` and
  `guidance_scale`, null-text's `train.num_inner_steps`, ...), one point per value: the mean CLIP
  score against the target text (editability, y) versus the mean 1 - LPIPS to the input (fidelity,
  x), averaged over cases (std over cases as error bars); other swept parameters give separate
  lines. `plots/editability_fidelity_<method>_<parameter>.png`, all points in
  `plots/editability_fidelity.csv`.
- Every method side by side: one point per (method, variant, setting of all its swept values),
  averaged over cases, `plots/editability_fidelity_methods.png` and
  `plots/editability_fidelity_methods.csv`.
- Reconstruction PSNR per inversion (the null-text paper's ablation): the mean PSNR to the input
  of the reconstruction results, per `param.inversion` (null_text / ddim / negative_prompt) and
  stage setting, with the standard deviation over cases as error bars: `plots/reconstruction_psnr.png` and
  `.csv`.

Rows come from every result.json under O (`editing_app.evaluation.summary.load_rows`), so runs of
different methods or variants written below one folder are compared in one figure. Legends sit
outside the axes and long labels are wrapped (`plot_figures`); the numbers are `plot_points`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from editing_app.evaluation.plot_figures import (
    curve_figure,
    methods_figure,
    reconstruction_figure,
    save,
)
from editing_app.evaluation.plot_points import (
    editability_fidelity_points,
    method_points,
    reconstruction_points,
)
from editing_app.evaluation.summary import load_rows, write_csv

log = logging.getLogger(__name__)

__all__ = ["editability_fidelity_points", "make_plots", "method_points", "reconstruction_points"]


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
            written.append(save(curve_figure(pts, f"{method}: {parameter}"), path))
        methods = [p for p in method_points(rows) if _usable(p)]
        if methods:
            write_csv(out / "editability_fidelity_methods.csv", methods, [])
            path = out / "editability_fidelity_methods.png"
            written += [
                out / "editability_fidelity_methods.csv",
                save(methods_figure(methods), path),
            ]
    recon = [p for p in reconstruction_points(rows) if p["psnr"] is not None]
    if recon:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "reconstruction_psnr.csv", recon, [])
        save(reconstruction_figure(recon), out / "reconstruction_psnr.png")
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
