# The two commands of the README quickstart:
#   make run    install headrace into .venv, write a starter config if there is none, serve it
#   make test   install the dev tools, then run ruff, mypy and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= headrace.toml

.PHONY: run test install install-dev lint typecheck pytest bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@if [ -f kit/package.json ]; then cd kit && npm install --no-audit --no-fund --silent; fi

run: install
	@[ -f $(CONFIG) ] || $(BIN)/headrace init -c $(CONFIG)
	$(BIN)/headrace serve -c $(CONFIG)

lint:
	$(BIN)/ruff check src tests bench kit tools
	$(BIN)/ruff format --check src tests bench kit tools
	$(BIN)/vulture src/headrace tests tools/vulture_whitelist.py --ignore-decorators "@field_validator,@model_validator"

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

test: install-dev lint typecheck pytest

bench: install-dev
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/transform.py
