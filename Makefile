# Two commands do everything: `make run` (default experiment) and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run lint test test-all bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==24.3.1" "setuptools==80.9.0"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: setup
	$(PY) -m dirac.run $(ARGS)

lint: setup
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q $(ARGS)

test-all: lint
	$(PY) -m pytest -q -m "" $(ARGS)

bench: setup
	$(PY) experiments/bench.py $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun
