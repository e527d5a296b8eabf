"""The local scale-out path and the command line, as users run them (subprocesses)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUICK = [
    "base_model=tiny",
    "clip=none",
    "method=direct_inversion",
    "method.num_inversion_steps=2",
    "method.num_inference_steps=2",
    "suite=demo",
    "suite.edit_types=[colour,shape]",
    "suite.n=1",
]


def evaluate(*args: str) -> subprocess.CompletedProcess:
    env = {
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    return subprocess.run(
        [sys.executable, "evaluate.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_two_shards_in_two_joblib_processes(tmp_path):
    out = tmp_path / "out"
    r = evaluate(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "suite.num_shards=2",
        "suite.shard=0,1",
        *QUICK,
        f"output_dir={out}",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    records = {p.parent.name: json.loads(p.read_text()) for p in out.glob("cases/*/result.json")}
    assert sorted(records) == ["colour-000", "shape-000"]
    workers = {(r["worker"]["shard"], r["worker"]["pid"]) for r in records.values()}
    assert {shard for shard, _ in workers} == {0, 1}
    assert len({pid for _, pid in workers}) == 2  # two processes
    assert all(r["status"] == "ok" for r in records.values())
    # the summary rebuilt at the end covers both shards' cases
    with open(out / "summary.csv") as f:
        summary = {row["edit_type"]: row for row in csv.DictReader(f)}
    assert summary["all"]["n_cases"] == "2" and summary["colour"]["n_cases"] == "1"
    with open(out / "results.csv") as f:
        assert sorted(row["case_id"] for row in csv.DictReader(f)) == ["colour-000", "shape-000"]

    # summarize_only rebuilds the same tables from the result.json files, without running
    from helpers import compose_config

    from editing_app.commands.evaluate import evaluate as evaluate_in_process

    before = (out / "summary.csv").read_text()
    (out / "summary.csv").unlink()
    cfg = compose_config("evaluate", [*QUICK, f"output_dir={out}", "summarize_only=true"])
    summary = evaluate_in_process(cfg)
    assert (out / "summary.csv").read_text() == before
    assert [row["n_cases"] for row in summary if row["edit_type"] == "all"] == [2]


def test_command_line_errors_are_one_line(tmp_path):
    r = evaluate("suite=nope", f"output_dir={tmp_path}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: unknown suite 'nope': choose one of demo, piebench, tedbench"
    ]
    r = evaluate("suite=tedbench", "base_model=tiny", f"output_dir={tmp_path}")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(
        "error: suite=tedbench needs suite.path=..."
    )
    assert not any(tmp_path.iterdir())
