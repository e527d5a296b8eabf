"""Benchmarking editing methods over many images: suites, the runner, metrics rows, summaries, plots.

`python evaluate.py suite=<demo|tedbench|piebench> method=M base_model=B output_dir=O` (see
docs/evaluation.md). One idea per module:

- `suites`: the `Case` of a suite, sharding, the demo world's suite; `tedbench`, `piebench`: the
  public formats; `rle`: PIE-Bench's run-length masks.
- `case_inputs`: a case -> the `Inputs` of stages and editors, at the model resolution.
- `stages`: which training stage a method needs, composed from the real configs and run on the
  shared base model with train.py's builders.
- `scoring`: the metrics of each result and the demo world's oracle verdicts.
- `records`: rows, configuration keys, atomic result.json.
- `runner`: the loop over cases (resumable, failure-tolerant).
- `summary`: results.csv / results.jsonl / summary.csv and the printed table, from result.json files.
- `plots`: editability-fidelity curves and reconstruction PSNR per inversion (matplotlib, Agg).

Nothing here imports Lightning unless a training stage runs.
"""
