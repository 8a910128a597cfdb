# The README's two commands: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# `make run` needs the runtime and the build tools of its demo index, not the dev set
# (Playwright, Locust, SciPy...): its own stamp, so it never waits for them.
RUN_STAMP := $(VENV)/.run-stamp
DEMO_DIR := .demo

.PHONY: run test lint typecheck unit security system-deps loadtest loadtest-full bench mutation clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[build]'
	touch $(RUN_STAMP)

## make run: build the demo index if missing, serve it on http://127.0.0.1:8000/
## make run DELIVERY=private: the same with private delivery (Redis, a local SMTP sink, the
## send-worker; messages land in .demo/mail/new/)
DELIVERY ?= screen
run: $(RUN_STAMP)
	$(PY) -m app demo --dir $(DEMO_DIR) --delivery $(DELIVERY)

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

## make security: only the security stage (tests/security, real processes); `make test` runs it too
security: $(STAMP) system-deps
	$(VENV)/bin/pytest -m security

## make loadtest: the load test, every scenario and threshold (5,000-record index, 60 s);
## under 5 minutes on a fresh clone. See loadtests/README.md
loadtest: $(STAMP) system-deps
	bash loadtests/run.sh

## make loadtest-full: the capacity run on a 1,000,000-record index (about an hour's build
## the first time, cached after; the runner prints its estimate before it starts)
loadtest-full: $(STAMP) system-deps
	bash loadtests/run.sh --full

## make bench: the benchmark scripts whose figures are in README.md and docs/BENCHMARKS.md
bench: $(STAMP) system-deps
	$(PY) loadtests/bench_index.py
	$(PY) loadtests/bench_api.py --profile standard
	$(PY) loadtests/bench_capacity.py
	$(PY) -m loadtests.bench_format
	$(PY) -m loadtests.bench_cluster
	$(PY) -m loadtests.bench_edge
	$(PY) -m loadtests.bench_pow
	$(PY) loadtests/bench_key_backend.py
	$(PY) -m loadtests.bench_recall

## make mutation: mutmut over the security-bearing modules, each on its fast in-process tests
## (about half an hour on 2 cores; not part of `make test`). MODULES="padding floor" runs some of them;
## survivors and kill rates are printed, triage in docs/MUTATION.md
mutation: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[mutation]'
	nice -n 15 $(PY) scripts/mutation.py $(MODULES)

clean:
	rm -rf .mutation $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
