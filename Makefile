# Two commands for a new user: `make run` and `make test`. Everything else is a step they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-all lint bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Local defaults: APP_ENV=development, database `tasklane` on 127.0.0.1, Redis db 0, emails to the log and to
# GET /dev/mail, relaxed rate limits (development only: with another APP_ENV the standard ones).
# Ctrl-C stops it as a platform stops a container: SIGTERM to every process, which ends by itself (an import
# commits its chunk and is handed back). honcho would SIGKILL whatever is left after 5 s; here it waits up to
# 30 s, as platforms do. honcho exits 130 after Ctrl-C (143 after SIGTERM): for `make run` that is a clean end.
PORT ?= 8000
HONCHO := import sys, honcho.manager; honcho.manager.KILL_WAIT = 30; from honcho.command import main; sys.exit(main())
run: install
	$(BIN)/python -m service.preflight
	$(BIN)/python -m service.migrate
	if [ "$${APP_ENV:-development}" = development ]; then export RATE_LIMITS="$${RATE_LIMITS:-relaxed}"; fi; \
	PATH="$(CURDIR)/$(BIN):$$PATH" HOST=127.0.0.1 $(BIN)/python -c '$(HONCHO)' start -f Procfile -p $(PORT) web worker; \
	  status=$$?; [ $$status -eq 0 ] || [ $$status -eq 130 ] || [ $$status -eq 143 ] || exit $$status

# The pre-commit hooks of .pre-commit-config.yaml on every file, with the venv's tools: ruff check, ruff
# format, bandit (service/, workers/) and detect-secrets (against .secrets.baseline).
lint: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pre-commit run --all-files --show-diff-on-failure

# The whole suite: unit, integration, end-to-end, resilience (fault injection) and security (~5 min);
# then the import suites (API + worker, and a worker SIGKILLed mid-import) again with uploads kept in an
# S3-compatible store (moto's server over HTTP) instead of the local folder.
IMPORT_SUITES := tests/imports/test_jobs.py tests/e2e/test_import_crash.py
test: install lint
	$(BIN)/python -m pytest
	TEST_UPLOAD_STORE=s3 $(BIN)/python -m pytest -q $(IMPORT_SUITES)

# The same with a much deeper schemathesis run over every operation of the OpenAPI document.
test-all: install lint
	SCHEMATHESIS_EXAMPLES=300 $(BIN)/python -m pytest
	TEST_UPLOAD_STORE=s3 $(BIN)/python -m pytest -q $(IMPORT_SUITES)

# Every tests/perf/bench_*.py in one go, one Markdown report in var/bench-report.md. wrk is used when it
# can be installed (a load generator in C); without it the scripts fall back to an asyncio client.
bench: install
	command -v wrk >/dev/null || (apt-get install -y -qq wrk >/dev/null 2>&1 || true)
	$(BIN)/python -m tests.perf.report

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
