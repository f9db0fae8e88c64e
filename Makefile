# Two commands do all set-up: `make demo` and `make test`. Both create .venv (Python 3.10) when absent.
# Override the interpreter with `make test PYTHON=/path/to/python3.10`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell scripts/find-python310)
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint format clean-venv

$(VENV)/.installed: setup.py constraints.txt
	@test -x $(PY) || { echo ">> creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade "pip<25" setuptools wheel
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

demo: $(VENV)/.installed
	$(PY) -m tfx_curator.pipelines.demo

# The whole suite, slow end-to-end tests included (this is what CI runs).
test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# The default developer loop: everything but tests marked slow.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean-venv:
	rm -rf $(VENV)
