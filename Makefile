# Fusion Workbench — the two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-fast lint format bench seed clean

# (Re)install only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m workbench.serve

seed: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo

# Parallel processes: most of the suite waits on subprocesses, sockets and browsers.
TEST_WORKERS ?= 3

test: install
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Everything but the browser and multi-process suites, for a quick loop while coding.
test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not browser and not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The figures in the README's Benchmarks section (add `--load --scaling 25` for the load).
bench: install
	$(PY) -m fusion.bench
	$(PY) -m workbench.bench

clean:
	rm -rf $(VENV) var/staticfiles .pytest_cache .mypy_cache .ruff_cache
