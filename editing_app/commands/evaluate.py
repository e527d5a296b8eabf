"""Benchmark an editing method over a suite of cases: images, metrics per result, summary tables.

    python evaluate.py suite=demo     method=M base_model=B output_dir=O
    python evaluate.py suite=tedbench suite.path=DIR method=imagic base_model=sd15 output_dir=O
    python evaluate.py suite=piebench suite.path=DIR method=null_text_p2p base_model=sd15 output_dir=O
    python evaluate.py ... summarize_only=true          # rebuild O's tables from its result.json files
    python evaluate.py ... plot=true                    # also the editability-fidelity plots
    python evaluate.py -m hydra/launcher=joblib suite.num_shards=2 suite.shard=0,1 ...   # 2 processes

Writes O/cases/<case_id>/ (edit.png, samples/, grid.png, input.png, mask.png, checkpoints/,
result.json), O/results.csv, O/results.jsonl and O/summary.csv, and prints the summary table.
Finished cases are skipped when rerun; a failing case is recorded and the run goes on; the exit
status is non-zero only when every case failed. See docs/evaluation.md.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from editing.errors import UserInputError
from editing_app.cli import precheck, run_cli
from editing_app.configs import CONFIG_DIR
from editing_app.validation import validate_config

log = logging.getLogger("evaluate")


class AllCasesFailed(UserInputError):
    """Every case of the run failed (the message says where the errors are recorded)."""


def summarize(cfg: DictConfig) -> list[dict]:
    """Rebuild O's tables from every result.json under it, print the summary, plot if asked."""
    from editing_app.evaluation.summary import format_table, rebuild

    root = Path(cfg.output_dir)
    rows, summary = rebuild(root)
    if rows:
        print(format_table(summary), flush=True)
        log.info(
            "wrote %s, %s and %s",
            root / "summary.csv",
            root / "results.csv",
            root / "results.jsonl",
        )
    else:
        log.warning("no result.json files under %s yet", root)
    if cfg.plot:
        from editing_app.evaluation.plots import make_plots

        for path in make_plots(root):
            log.info("wrote %s", path)
    return summary


def evaluate(cfg: DictConfig):
    """Run this shard's cases (unless `summarize_only`), then rebuild the summary of output_dir."""
    if cfg.summarize_only:
        return summarize(cfg)
    from editing_app.evaluation.suites import load_cases

    validate_config(cfg)
    cases = load_cases(cfg.suite)  # a bad suite fails here, before any heavy import
    from editing_app.evaluation.runner import run_suite

    report = run_suite(cfg, cases)
    summarize(cfg)
    if report.all_failed:
        raise AllCasesFailed(
            f"every case failed ({report.failed}); the errors are in "
            f"{Path(cfg.output_dir) / 'results.csv'} and each case's result.json"
        )
    return report


@hydra.main(config_path=str(CONFIG_DIR), config_name="evaluate", version_base=None)
def hydra_main(cfg: DictConfig) -> None:
    run_cli(evaluate, cfg)


def main() -> None:
    """The `evaluate` command: the command line checked in one line, then the Hydra app."""
    precheck(CONFIG_DIR, "evaluate", sys.argv[1:])
    hydra_main()
