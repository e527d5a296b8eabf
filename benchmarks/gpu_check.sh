#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py): every stage and method at full size with random
# weights, bf16, with and without the memory switches; writes runs/gpu_check.md (machine, one table,
# the targets). About 8 minutes on one H100-class GPU. Extra arguments go to the Python module.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec "$PY" -m benchmarks.gpu_check --device cuda --markdown runs/gpu_check.md "$@"
