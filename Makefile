# The two front-door commands: `make run` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: install run test lint typecheck pytest fuzz bench lock clean

$(VENV)/.installed: requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

install: $(VENV)/.installed

## make run: apply migrations, then serve on $HOST:$PORT (DATABASE_URL, or SQLite in ./chatapi.db)
run: install
	$(BIN)/chatapi migrate
	$(BIN)/chatapi serve

## make test: lint, type-check, and the whole suite against PostgreSQL and SQLite
test: lint typecheck pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

## make fuzz: Schemathesis (every check, stateful too) against the app served as `make run`
## serves it, on a throwaway PostgreSQL, for several minutes; fails on any finding
fuzz: install
	$(BIN)/python -m tests.fuzz.live

## make bench: load-test the service with wrk against PostgreSQL; writes docs/benchmarks.md
bench: install
	$(BIN)/python -m bench.run

## make lock: re-resolve both lock files after a change to pyproject.toml
lock:
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --python-platform linux -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --python-platform linux -o requirements-dev.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
