"""Summary tables equal a hand recomputation from the rows; rebuilding reads every result.json."""

from __future__ import annotations

import csv
import json

import pytest

from editing_app.evaluation.records import write_json
from editing_app.evaluation.summary import format_table, rebuild, summarize, sweep_keys


def _row(case, eta, clip, fidelity, psnr, success, preserved, train, edit, edit_type="colour"):
    return {
        "case_id": case,
        "edit_type": edit_type,
        "method": "imagic",
        "variant": "",
        "kind": "edit",
        "status": "ok",
        "param.eta": eta,
        "param.seed": 0 if eta < 1 else 1,  # seeds are never a sweep
        "param.prompt": f"text of {case}",  # nor prompts
        "clip_score": clip,
        "one_minus_lpips": fidelity,
        "psnr": psnr,
        "background_psnr": None,
        "success": success,
        "preserved": preserved,
        "train_seconds": train,
        "edit_seconds": edit,
    }


ROWS = [
    _row("a", 0.5, 20.0, 0.5, 10.0, True, False, 1.0, 2.0),
    _row("a", 1.0, 30.0, 0.4, 8.0, False, False, 1.0, 2.0),
    _row("b", 0.5, 22.0, 0.7, 14.0, True, True, 3.0, 4.0),
    _row("b", 1.0, 26.0, 0.6, float("nan"), True, None, 3.0, 4.0),
    _row("c", 0.5, 40.0, 0.9, 20.0, False, True, 5.0, 6.0, edit_type="shape"),
    _row("c", 1.0, 44.0, 0.8, 18.0, False, True, 5.0, 6.0, edit_type="shape"),
    {
        "case_id": "d",
        "edit_type": "shape",
        "method": "imagic",
        "variant": "",
        "kind": "edit",
        "status": "failed",
        "error": "UserInputError: image file not found",
        "train_seconds": 0.0,
        "edit_seconds": None,
    },
]


def _find(summary, setting, edit_type):
    (row,) = [r for r in summary if r["setting"] == setting and r["edit_type"] == edit_type]
    return row


def test_sweep_keys_ignore_prompts_and_seeds():
    assert sweep_keys(ROWS) == {"imagic": ["param.eta"]}


def test_per_case_prompt_parameters_are_never_a_sweep():
    # Direct Inversion with invert_with_source inverts with each case's caption
    rows = [{**r, "param.inversion_prompt": f"caption of {r['case_id']}"} for r in ROWS]
    assert sweep_keys(rows) == {"imagic": ["param.eta"]}
    assert {r["setting"] for r in summarize(rows)} == {"eta=0.5", "eta=1"}


def test_summary_numbers_equal_a_hand_recomputation():
    summary = summarize(ROWS)
    assert [(r["setting"], r["edit_type"]) for r in summary] == [
        ("eta=0.5", "colour"),
        ("eta=0.5", "shape"),
        ("eta=0.5", "all"),
        ("eta=1", "colour"),
        ("eta=1", "shape"),
        ("eta=1", "all"),
    ]
    row = _find(summary, "eta=0.5", "colour")
    assert (row["n_cases"], row["n_results"], row["n_failed"]) == (2, 2, 0)
    assert row["success_rate"] == 1.0 and row["preservation_rate"] == 0.5
    assert row["clip_score"] == pytest.approx(21.0)
    assert row["one_minus_lpips"] == pytest.approx(0.6)
    assert row["psnr"] == pytest.approx(12.0)
    assert row["background_psnr"] is None
    assert row["train_seconds"] == pytest.approx(2.0) and row["edit_seconds"] == pytest.approx(3.0)
    assert row["time_seconds"] == pytest.approx(5.0)

    row = _find(summary, "eta=1", "colour")
    assert row["success_rate"] == 0.5
    assert row["preservation_rate"] == 0.0  # None (not judged) is left out: 0 of 1
    assert row["psnr"] == pytest.approx(8.0)  # NaN is left out
    assert row["clip_score"] == pytest.approx(28.0)

    row = _find(summary, "eta=0.5", "shape")
    assert (row["n_cases"], row["n_failed"]) == (1, 1)  # case d failed
    assert row["success_rate"] == 0.0 and row["preservation_rate"] == 1.0

    row = _find(summary, "eta=1", "all")
    assert (row["n_cases"], row["n_results"], row["n_failed"]) == (3, 3, 1)
    assert row["clip_score"] == pytest.approx((30 + 26 + 44) / 3)
    assert row["one_minus_lpips"] == pytest.approx((0.4 + 0.6 + 0.8) / 3)
    assert row["success_rate"] == pytest.approx(1 / 3)
    assert row["preservation_rate"] == pytest.approx(0.5)
    assert row["train_seconds"] == pytest.approx(3.0)  # per case, not per result
    assert row["edit_seconds"] == pytest.approx(4.0)

    table = format_table(summary)
    assert "success" in table and "eta=0.5" in table and "bg PSNR" not in table  # empty column


def test_failed_only_groups_and_reconstructions():
    rows = [dict(r) for r in ROWS if r["case_id"] == "d"]
    rows.append(
        {
            **_row("e", 0.5, 20.0, 0.5, 30.0, None, True, 1.0, 1.0),
            "kind": "reconstruction",
            "reconstruction_psnr": 30.0,
        }
    )
    summary = summarize(rows)
    failed = [r for r in summary if r["kind"] == "edit" and r["edit_type"] == "shape"]
    assert failed[0]["n_failed"] == 1 and failed[0]["n_cases"] == 0
    recon = [r for r in summary if r["kind"] == "reconstruction" and r["edit_type"] == "all"]
    assert recon[0]["reconstruction_psnr"] == 30.0 and recon[0]["n_failed"] == 0


def test_rebuild_reads_every_result_json_below_the_root(tmp_path):
    ok = [r for r in ROWS if r["case_id"] in ("a", "b")]
    write_json(tmp_path / "cases" / "a" / "result.json", {"status": "ok", "rows": ok[:2]})
    write_json(tmp_path / "cases" / "b" / "result.json", {"status": "ok", "rows": ok[2:]})
    variant = [{**r, "variant": "steps=5"} for r in ok[:2]]
    write_json(tmp_path / "steps=5" / "cases" / "a" / "result.json", {"rows": variant})
    (tmp_path / "cases" / "broken").mkdir()
    (tmp_path / "cases" / "broken" / "result.json").write_text("{torn")
    rows, summary = rebuild(tmp_path)
    assert len(rows) == 6
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["case_id"] == "a"
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and table[0]["case_id"] == "a" and list(table[0])[0] == "case_id"
    assert table[3]["psnr"] == ""  # NaN -> empty cell
    with open(tmp_path / "summary.csv") as f:
        written = list(csv.DictReader(f))
    assert {r["variant"] for r in written} == {"", "steps=5"}
    assert len(written) == len(summary)


def test_only_the_best_of_ranked_candidates_is_summarized():
    rows = []
    for rank, score, clip in ((1, 0.2, 30.0), (2, 0.5, 10.0)):
        row = _row("a", 0.5, clip, 0.5, 10.0, True, True, 0.0, 1.0)
        row.update({"method": "blended", "param.rank": rank, "param.score": score})
        rows.append(row)
    assert sweep_keys(rows) == {"blended": []}  # rank and score are outputs, not settings
    (summary,) = [r for r in summarize(rows) if r["edit_type"] == "all"]
    assert (summary["n_results"], summary["clip_score"], summary["setting"]) == (1, 30.0, "")
