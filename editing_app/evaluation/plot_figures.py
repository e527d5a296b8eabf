"""Matplotlib figures of the evaluation points (`plot_points`), built to stay readable.

Each builder returns a Figure laid out by matplotlib's constrained layout: the legend sits outside
the axes, to their right (it never covers a curve), long labels are wrapped, and every text box
lies inside the figure. Points carry their spread over cases as error bars. `save` writes a PNG
(and closes the figure).
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["curve_figure", "methods_figure", "reconstruction_figure", "save", "wrap"]

X_LABEL = "fidelity: 1 - LPIPS to the input"
Y_LABEL = "editability: CLIP score to the target text"
MARKERS = "osD^v<>Ph*X"
LEGEND_ROWS = 18  # legend entries per column


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def wrap(text: str, width: int = 36) -> str:
    """`text` broken into lines of at most `width` characters (words kept whole)."""
    return "\n".join(textwrap.wrap(text, width)) if text else text


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _legend_outside(ax, title: str | None = None, entries: int = 1) -> None:
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=7,
        title=title,
        title_fontsize=8,
        ncols=max(1, -(-entries // LEGEND_ROWS)),
    )


def _errorbars(ax, pts: list[dict[str, Any]], spread: bool = True, **style):
    return ax.errorbar(
        [p["one_minus_lpips"] for p in pts],
        [p["clip_score"] for p in pts],
        xerr=[p.get("one_minus_lpips_std") or 0.0 for p in pts] if spread else None,
        yerr=[p.get("clip_score_std") or 0.0 for p in pts] if spread else None,
        elinewidth=0.8,
        capsize=2,
        **style,
    )


def _axes(title: str, width: float = 8.0, height: float = 4.5):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return fig, ax


def curve_figure(points: list[dict[str, Any]], title: str):
    """Editability-fidelity curves of one swept parameter: one line per (variant, other swept
    values), its points the parameter's values. The values are written beside the points of the
    first line only (the other lines share them), so labels never pile up; the spread over cases
    is drawn for up to two lines (more would hide the curves)."""
    lines: dict[tuple, list[dict]] = defaultdict(list)
    for p in points:
        lines[(p["variant"], p["line"])].append(p)
    fig, ax = _axes(title)
    spread = len(lines) <= 2
    for k, ((variant, line), pts) in enumerate(lines.items()):
        label = wrap(" ".join(t for t in (variant, line) if t)) or None
        _errorbars(ax, pts, spread, marker=MARKERS[k % len(MARKERS)], label=label, alpha=0.9)
        if k == 0:
            for p in pts:
                if p["parameter"]:
                    ax.annotate(_value_text(p["value"]), (p["one_minus_lpips"], p["clip_score"]),
                                fontsize=8, textcoords="offset points", xytext=(4, 4))  # fmt: skip
    if any(variant or line for variant, line in lines):
        parameter = points[0]["parameter"] if points else ""
        _legend_outside(ax, f"(points: {parameter})" if parameter else None, len(lines))
    return fig


def methods_figure(points: list[dict[str, Any]]):
    """One marker per (method, variant, setting) with its spread over cases; colours tell
    methods apart, markers the settings of one method, and the legend names each."""
    fig, ax = _axes("methods (mean over cases, bars: std)")
    colours: dict[tuple, int] = {}
    settings: dict[tuple, int] = defaultdict(int)
    for p in points:
        who = (p["method"], p["variant"])
        colour = colours.setdefault(who, len(colours))
        marker = MARKERS[settings[who] % len(MARKERS)]
        settings[who] += 1
        name = " ".join(t for t in (p["method"], p["variant"], p.get("setting", "")) if t)
        _errorbars(ax, [p], marker=marker, linestyle="none", color=f"C{colour % 10}",
                   label=wrap(f"{name} (n={p['n_cases']})"))  # fmt: skip
    if points:
        _legend_outside(ax, entries=len(points))
    return fig


def reconstruction_figure(points: list[dict[str, Any]]):
    """Reconstruction PSNR bars per (inversion, setting) with the std over cases."""
    plt = _pyplot()
    width = max(4.0, 1.3 * len(points) + 2)
    fig, ax = plt.subplots(figsize=(width, 4.0), layout="constrained")
    labels = [
        "\n".join(t for t in (p["inversion"] or p["method"], wrap(p["setting"], 14)) if t)
        for p in points
    ]
    ax.bar(range(len(points)), [p["psnr"] for p in points],
           yerr=[p["psnr_std"] or 0.0 for p in points], capsize=4, color="tab:blue")  # fmt: skip
    ax.set_xticks(range(len(points)), labels, fontsize=8)
    ax.set_ylabel("reconstruction PSNR to the input (dB)")
    ax.set_title("reconstruction per inversion (mean over cases, bars: std)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def save(fig, path: str | Path) -> Path:
    """Write `fig` as a PNG (tight bounding box, nothing cut off) and close it."""
    plt = _pyplot()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
