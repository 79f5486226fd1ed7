# Two commands for a new user: `make run` and `make test`. Everything else is a step they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Local defaults: APP_ENV=development, database `tasklane` on 127.0.0.1, Redis db 0, emails to the log.
run: install
	$(BIN)/python -m service.preflight
	$(BIN)/python -m service.migrate
	PATH="$(CURDIR)/$(BIN):$$PATH" HOST=127.0.0.1 $(BIN)/honcho start -f Procfile -p 8000 web worker

lint: install
	$(BIN)/ruff check service workers tests

test: install lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m tests.perf.report

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
