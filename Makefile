# Every target bootstraps its own virtual environment from requirements.lock on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
UV_VERSION := 0.13.9

.PHONY: run test lint typecheck unit bench clean tools

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/linkprobe serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# System tools the tests start or call: installed from Debian when missing (CI starts clean).
tools:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v curl >/dev/null \
	  && command -v pgrep >/dev/null || { apt-get update -q && apt-get install -y -q redis-server curl procps; }

unit: $(STAMP) tools
	$(BIN)/python -m pytest

test: lint typecheck unit

bench: $(STAMP) tools
	PYTHONPATH=. $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
