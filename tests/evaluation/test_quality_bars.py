"""The quality-bar aggregation on hand-made rows (the numbers are checked by hand)."""

from __future__ import annotations

import json
import math

from editing_app.evaluation import quality_bars


def _write(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_text(
        "".join(json.dumps({"status": "ok", **r}) + "\n" for r in rows)
    )


def test_imagic_some_eta_and_reconstruction(tmp_path):
    rows = []
    # case a: reached at eta 0.8 (kept), and at 1.0 (not kept); case b: only at eta 0.5 (outside the window)
    for eta, success, preserved in (
        (0.0, False, True),
        (0.5, False, True),
        (0.8, True, True),
        (1.0, True, False),
    ):
        rows.append(
            {
                "case_id": "a",
                "edit_type": "shape",
                "param.eta": eta,
                "success": success,
                "preserved": preserved,
                "psnr": 30.0,
            }
        )
    for eta, success in ((0.0, False), (0.5, True), (0.8, False)):
        rows.append(
            {
                "case_id": "b",
                "edit_type": "shape",
                "param.eta": eta,
                "success": success,
                "preserved": True,
                "psnr": 20.0,
            }
        )
    _write(tmp_path, rows)
    table = quality_bars.imagic(str(tmp_path))["shape"]
    assert (
        table["cases"] == 2
        and table["target_reached"] == 0.5
        and table["kept_given_reached"] == 1.0
    )
    assert table["eta0_psnr"] == 25.0


def test_blended_rank_one_only(tmp_path):
    rows = [
        {
            "case_id": "a",
            "param.rank": 1,
            "background_psnr": math.inf,
            "success": True,
            "oracle_shape": True,
            "oracle_colour": True,
        },
        {
            "case_id": "a",
            "param.rank": 2,
            "background_psnr": 20.0,
            "success": False,
            "oracle_shape": False,
            "oracle_colour": True,
        },
        {
            "case_id": "b",
            "param.rank": 1,
            "background_psnr": 31.0,
            "success": True,
            "oracle_shape": True,
            "oracle_colour": False,
        },
    ]
    (tmp_path / "results.jsonl").write_text(
        "".join(json.dumps({"status": "ok", **r}) + "\n" for r in rows)
    )
    out = quality_bars.blended(str(tmp_path))
    assert (
        out["cases"] == 2
        and out["background_exact"] == 0.5
        and out["object_present"] == 0.5
        and out["success"] == 1.0
    )


def test_direct_inversion_success_with_position_and_with_everything_kept(tmp_path):
    rows = []
    # lambda 0.5: a reaches and keeps everything; b reaches, keeps the position, loses the size;
    # c misses. lambda 1: nobody reaches.
    for case, success, position, preserved in (
        ("a", True, True, True),
        ("b", True, True, False),
        ("c", False, True, True),
    ):
        rows.append(
            {
                "case_id": case,
                "param.noise_lambda": 0.5,
                "success": success,
                "oracle_position": position,
                "preserved": preserved,
                "psnr": 20.0,
                "one_minus_lpips": 0.8,
            }
        )
        rows.append(
            {
                "case_id": case,
                "param.noise_lambda": 1.0,
                "success": False,
                "oracle_position": True,
                "preserved": True,
                "psnr": 40.0,
                "one_minus_lpips": 1.0,
            }
        )
    _write(tmp_path, rows)
    table = quality_bars.direct_inversion(str(tmp_path))
    assert math.isclose(table[0.5]["success"], 2 / 3)
    assert math.isclose(table[0.5]["success_position_kept"], 2 / 3)
    assert math.isclose(table[0.5]["success_all_kept"], 1 / 3)
    assert table[1.0]["success"] == 0.0 and table[1.0]["psnr"] == 40.0
