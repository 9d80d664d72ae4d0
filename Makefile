# Two entry points: `make demo` (the main job) and `make test` (lint, types, tests).
# Both build .venv from python3 alone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m swapprof demo

lint: $(STAMP)
	$(VENV)/bin/ruff check swapprof tests benchmarks examples
	$(VENV)/bin/ruff format --check swapprof tests benchmarks examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) benchmarks/switch.py

clean:
	rm -rf $(VENV) .swapprof build *.egg-info
