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

from editing_app.commands.evaluate import AllCasesFailed, evaluate, main

__all__ = ["AllCasesFailed", "evaluate", "main"]

if __name__ == "__main__":
    main()
