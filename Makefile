# The two front-door commands: `make run` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

PIP := $(BIN)/pip install --quiet --disable-pip-version-check
# One stamp per lock: serving needs the runtime lock only; the tools that test, lint, fuzz
# and benchmark come on top of it from the development lock, the first time one is needed.
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: install install-dev run test lint typecheck pytest pytest-standby fuzz bench lock clean

# Order-only (after `|`): bin/python is a symlink whose date is the system Python's.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): requirements.lock pyproject.toml | $(BIN)/python
	$(PIP) --require-hashes -r requirements.lock
	$(PIP) --no-deps -e .
	touch $@

# The development lock pins the runtime packages exactly as requirements.lock does (a test
# checks it), so adding it changes none of them.
$(DEV): requirements-dev.lock $(RUNTIME)
	$(PIP) --require-hashes -r requirements-dev.lock
	touch $@

install: $(RUNTIME)
install-dev: $(DEV)

## make run: apply migrations, then serve on $HOST:$PORT (DATABASE_URL, or SQLite in ./chatapi.db)
run: install
	$(BIN)/chatapi migrate
	$(BIN)/chatapi serve

## make test: lint, type-check, the whole suite against PostgreSQL and SQLite, then the
## contract and paging tests again with every read on a hot standby
test: lint typecheck pytest pytest-standby

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest

pytest-standby: install-dev
	CHATAPI_TEST_READS_ON_STANDBY=1 $(BIN)/pytest -k "not sqlite" tests/api tests/integration/test_paging.py

## make fuzz: Schemathesis (every check, stateful too) against the app served as `make run`
## serves it, on a throwaway PostgreSQL, for several minutes; fails on any finding
fuzz: install-dev
	$(BIN)/python -m tests.fuzz.live

## make bench: load-test the service with wrk against PostgreSQL; writes docs/benchmarks.md
bench: install-dev
	$(BIN)/python -m bench.run

## make lock: re-resolve both lock files to the newest releases pyproject.toml allows
lock: | $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --upgrade --generate-hashes --python-version 3.11 --python-platform linux -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --upgrade --extra dev --generate-hashes --python-version 3.11 --python-platform linux -o requirements-dev.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
