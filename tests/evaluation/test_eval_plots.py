"""The evaluation figures: one point per (method, setting) averaged over cases, legends outside the
axes, every text box inside the figure."""

from __future__ import annotations

import math
import random

import pytest

from editing_app.evaluation.plot_figures import (
    curve_figure,
    methods_figure,
    reconstruction_figure,
)
from editing_app.evaluation.plot_points import (
    case_mean_std,
    editability_fidelity_points,
    method_points,
    reconstruction_points,
)

LAMBDAS = [0.0, 0.25, 0.5, 0.75, 1.0]
N_CASES = 12


def _row(method: str, case: int, **extra) -> dict:
    rng = random.Random(f"{method} {case} {sorted(extra.items())}")
    return {
        "case_id": f"colour-{case:03d}",
        "method": method,
        "variant": "",
        "kind": "edit",
        "status": "ok",
        "clip_score": 60 + 30 * rng.random(),
        "one_minus_lpips": 0.7 + 0.3 * rng.random(),
        **extra,
    }


def demo_like_rows() -> list[dict]:
    """Rows shaped like the demo-world quality run: per-case captions in Direct Inversion's
    `param.inversion_prompt`, Imagic's eta x seeds, two null-text variants with reconstructions,
    Blended's ranked candidates, and one failed case."""
    rows = []
    for case in range(N_CASES):
        caption = f"a large shape number {case} on a gray background"
        rows += [
            _row("direct_inversion", case, **{"param.noise_lambda": lam,
                 "param.inversion_prompt": caption, "param.prompt": caption + " (edited)"})
            for lam in LAMBDAS
        ]  # fmt: skip
        rows += [
            _row("imagic", case, **{"param.eta": eta, "param.seed": seed})
            for eta in (0.0, 0.7, 0.9)
            for seed in (0, 1)
        ]
        for variant in ("null_text", "ddim"):
            rows.append(_row("null_text_p2p", case, variant=variant))
            recon = _row("null_text_p2p", case, variant=variant, kind="reconstruction")
            rows.append({**recon, "param.inversion": variant, "reconstruction_psnr": 20.0 + case})
        rows += [_row("blended", case, **{"param.rank": rank}) for rank in (1, 2, 3)]
    rows.append({"case_id": "colour-999", "method": "imagic", "status": "failed"})
    return rows


def test_case_mean_averages_each_case_first_and_spreads_over_cases():
    rows = [
        {"case_id": "a", "x": 1.0},
        {"case_id": "a", "x": 3.0},  # case a: 2
        {"case_id": "b", "x": 6.0},  # case b: 6
        {"case_id": "b", "x": float("nan")},
    ]
    assert case_mean_std(rows, "x") == (4.0, 2.0, 2)
    assert case_mean_std(rows[:1], "x") == (1.0, None, 1)
    assert case_mean_std([{"case_id": "a"}], "x") == (None, None, 0)


def test_methods_points_are_one_per_method_variant_and_setting():
    points = method_points(demo_like_rows())
    keys = [(p["method"], p["variant"], p["setting"]) for p in points]
    expected = (
        [("blended", "", "")]
        + [("direct_inversion", "", f"noise_lambda={lam:g}") for lam in LAMBDAS]
        + [("imagic", "", f"eta={eta:g}") for eta in (0.0, 0.7, 0.9)]
        + [("null_text_p2p", "ddim", ""), ("null_text_p2p", "null_text", "")]
    )
    assert keys == expected
    assert all(p["n_cases"] == N_CASES for p in points)
    imagic = next(p for p in points if p["setting"] == "eta=0.7")
    assert imagic["n"] == 2 * N_CASES  # both seeds of every case, averaged per case first
    assert imagic["clip_score_std"] > 0 and imagic["one_minus_lpips_std"] > 0


def test_curve_points_are_one_per_parameter_value_not_per_case():
    points = [p for p in editability_fidelity_points(demo_like_rows()) if p["parameter"]]
    di = [p for p in points if p["method"] == "direct_inversion"]
    assert [(p["parameter"], p["value"], p["line"]) for p in di] == [
        ("noise_lambda", lam, "") for lam in LAMBDAS
    ]
    mean = sum(r["clip_score"] for r in demo_like_rows() if r.get("param.noise_lambda") == 0.5)
    assert di[2]["clip_score"] == pytest.approx(mean / N_CASES)


def test_reconstruction_points_are_one_per_inversion():
    points = reconstruction_points(demo_like_rows())
    assert [(p["inversion"], p["n_cases"]) for p in points] == [
        ("ddim", N_CASES),
        ("null_text", N_CASES),
    ]
    assert points[0]["psnr"] == pytest.approx(20.0 + (N_CASES - 1) / 2)


def _inside(box, outer, slack: float = 1.0) -> bool:
    return (
        outer.x0 - slack <= box.x0
        and box.x1 <= outer.x1 + slack
        and outer.y0 - slack <= box.y0
        and box.y1 <= outer.y1 + slack
    )


def _assert_readable(fig, legend_expected: bool) -> None:
    """Legend right of the axes (no overlap); everything drawn (tick labels, titles, legend,
    annotations) inside the figure as it is, before any tight cropping on save."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    axes_box = ax.get_window_extent(renderer)
    legend = ax.get_legend()
    assert (legend is not None) == legend_expected
    texts = list(ax.texts) + [ax.title, ax.xaxis.label, ax.yaxis.label]
    if legend is not None:
        box = legend.get_window_extent(renderer)
        assert box.x0 >= axes_box.x1, "the legend overlaps the axes"
        assert _inside(box, fig.bbox), "the legend is cut off"
        texts += legend.get_texts()
    for text in texts:
        if text.get_text().strip():
            assert _inside(text.get_window_extent(renderer), fig.bbox), text.get_text()
    assert _inside(fig.get_tightbbox(renderer), fig.bbox_inches, slack=0.01)


def test_methods_figure_has_its_legend_outside_and_no_point_labels():
    points = method_points(demo_like_rows())
    fig = methods_figure(points)
    _assert_readable(fig, legend_expected=True)
    (ax,) = fig.axes
    assert len(ax.get_legend().get_texts()) == len(points)
    assert len(ax.texts) == 0  # no annotations piled on the points


def test_curve_figure_with_many_lines_keeps_legend_and_labels_readable():
    rows = [
        {**r, "param.guidance_scale": float(1 + int(r["case_id"][-3:]) % 4)}
        for r in demo_like_rows()
        if r["method"] == "direct_inversion"
    ]
    points = editability_fidelity_points(rows)
    curve = [p for p in points if p["parameter"] == "noise_lambda"]
    assert len({p["line"] for p in curve}) == 4
    fig = curve_figure(curve, "direct_inversion: noise_lambda")
    _assert_readable(fig, legend_expected=True)
    (ax,) = fig.axes
    assert len(ax.texts) == len(LAMBDAS)  # the values, along one line only


def test_reconstruction_figure_fits_its_labels():
    points = reconstruction_points(demo_like_rows())
    points = [{**p, "setting": "train.num_inner_steps=10 train.lr=0.01"} for p in points]
    _assert_readable(reconstruction_figure(points), legend_expected=False)
    assert not math.isnan(points[0]["psnr"])
