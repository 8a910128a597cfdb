# The README's two commands: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR := .demo

.PHONY: run test lint typecheck unit system-deps loadtest bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,build]'
	touch $(STAMP)

## make run: build the demo index if missing, serve it on http://127.0.0.1:8000/
run: $(STAMP)
	$(PY) -m app demo --dir $(DEMO_DIR)

## make test: install what the suite needs (Redis, nginx, Chromium), lint, type-check, test
test: $(STAMP) system-deps lint typecheck unit

system-deps:
	bash scripts/ensure-system-packages.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest

## make loadtest: the full load test (1M-record index, 60 s); see loadtests/README.md
loadtest: $(STAMP) system-deps
	bash loadtests/run.sh

## make bench: the benchmark scripts whose figures are in README.md and docs/BENCHMARKS.md
bench: $(STAMP) system-deps
	$(PY) loadtests/bench_index.py
	$(PY) loadtests/bench_api.py --profile standard
	$(PY) loadtests/bench_capacity.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
