# The two front-door commands: `make run` and `make test`. Each installs what it needs.
# `make` alone, or `make help`, lists the commands from the `## make ...` lines below.
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

# The oldest Python chatapi runs on: read from pyproject.toml's requires-python = ">=X.Y".
MIN_PYTHON := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\)"$$/\1/p' pyproject.toml)
$(if $(MIN_PYTHON),,$(error the Makefile reads requires-python = ">=X.Y" in pyproject.toml))
comma := ,
# "yes" if the Python command $(1) runs and is MIN_PYTHON or newer (any Python can run the check).
fits = $(shell $(1) -c 'import sys; print(sys.version_info[:2] >= ($(subst .,$(comma),$(MIN_PYTHON))) and "yes" or "")' 2>/dev/null)
version = $(shell $(1) -c 'import sys; print("Python " + sys.version.split()[0])' 2>/dev/null)
TOO_OLD = $(PYTHON) is $(or $(call version,$(PYTHON)),not a Python that runs); chatapi needs \
	Python $(MIN_PYTHON) or newer: run make with PYTHON=python$(MIN_PYTHON) (or newer)

.DEFAULT_GOAL := help
.PHONY: help install install-dev run test lint typecheck pytest pytest-standby fuzz bench layers lock \
	clean FORCE

## make help: this list
help:
	@sed -n -e 's/^## \(make \)/\1/p' -e 's/^## /    /p' $(firstword $(MAKEFILE_LIST))

# The virtualenv, made again from nothing (FORCE) unless its Python is MIN_PYTHON+: one made
# by an older Python fails every install with a resolver error that never says why. An older
# $(PYTHON) stops make with a one-line message (exit status 2) before anything is made: make
# expands all of a recipe's lines before it runs the first. The installs depend on pyvenv.cfg,
# written when the virtualenv is made (bin/python is a symlink dated as the system's Python):
# a new virtualenv gets everything installed again.
$(VENV)/pyvenv.cfg: $(if $(call fits,$(BIN)/python),,FORCE)
	$(if $(call fits,$(PYTHON)),,$(error $(TOO_OLD)))
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): requirements.lock pyproject.toml $(VENV)/pyvenv.cfg
	$(PIP) --require-hashes -r requirements.lock
	$(PIP) --no-deps -e .
	touch $@

# The development lock pins the runtime packages exactly as requirements.lock does (a test
# checks it), so adding it changes none of them.
$(DEV): requirements-dev.lock $(RUNTIME)
	$(PIP) --require-hashes -r requirements-dev.lock
	touch $@

## make install: a virtualenv in .venv (or VENV=...) with what `make run` needs
install: $(RUNTIME)
## make install-dev: the same, and the tools that test, lint, fuzz and benchmark
install-dev: $(DEV)

## make run: apply migrations, then serve on $HOST:$PORT (DATABASE_URL, or SQLite in ./chatapi.db)
run: install
	$(BIN)/chatapi migrate
	$(BIN)/chatapi serve

## make test: lint, type-check, the whole suite against PostgreSQL and SQLite, then the
## contract and paging tests again with every read on a hot standby
test: lint typecheck pytest pytest-standby

## make lint: ruff check and ruff format --check
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make typecheck: mypy, strict
typecheck: install-dev
	$(BIN)/mypy

## make pytest: the whole suite alone (PostgreSQL's server binaries, if found, and SQLite)
pytest: install-dev
	$(BIN)/pytest

## make pytest-standby: the contract and paging tests with every read on a hot standby
pytest-standby: install-dev
	CHATAPI_TEST_READS_ON_STANDBY=1 $(BIN)/pytest -k "not sqlite" tests/api tests/integration/test_paging.py

## make fuzz: Schemathesis (every check, stateful too) against the app served as `make run`
## serves it, on a throwaway PostgreSQL, for several minutes; fails on any finding
fuzz: install-dev
	$(BIN)/python -m tests.fuzz.live

## make bench: load-test the service with wrk against PostgreSQL; writes docs/benchmarks.md
bench: install-dev
	$(BIN)/python -m bench.run

## make layers: what each of the service's layers costs a request, in CPU, one taken out at
## a time, the app called in-process on a throwaway PostgreSQL (bench/layers.py, ~2 min)
layers: install-dev
	$(BIN)/python -m bench.layers

## make lock: re-resolve both lock files to the newest releases pyproject.toml allows
lock: $(VENV)/pyvenv.cfg
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --upgrade --generate-hashes --python-version $(MIN_PYTHON) --python-platform linux -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --upgrade --extra dev --generate-hashes --python-version $(MIN_PYTHON) --python-platform linux -o requirements-dev.lock

## make clean: remove the virtualenv and the tools' caches
clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
