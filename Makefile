# Two commands: `make run` (set up, load demo data, serve) and `make test` (set up, lint, type-check, test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_CUSTOMERS ?= 5000
PG_TEST_URL ?= postgresql+psycopg://root@localhost:5432/test

.PHONY: chromium messages setup run demo serve test test-pg lint typecheck migrations-check pytest clean

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Rapport needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# Front-end packages of the web workspace (served from node_modules, never from a CDN).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The browser of the end-to-end tests: Debian's Chromium (Playwright never downloads one).
chromium:
	(command -v chromium >/dev/null && test -d /usr/share/fonts/opentype/noto) || (apt-get update && apt-get install -y chromium fonts-noto-cjk)

# The browser is only for the end-to-end tests: `make run` never needs it.
setup: $(BIN)/.installed node_modules/.installed

# After adding texts to pages: extract msgids into both catalogues, then translate the empty ones.
messages: setup
	$(BIN)/python -m rapport.web.catalogues

run: setup
	$(BIN)/rapport db upgrade
	$(BIN)/rapport demo --if-empty --customers $(DEMO_CUSTOMERS)
	test -f data/analytics.duckdb || $(BIN)/rapport analytics run
	$(BIN)/rapport serve --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup
	$(BIN)/mypy

migrations-check: setup
	rm -f $(VENV)/drift-check.db
	$(BIN)/rapport db check --url sqlite:///$(CURDIR)/$(VENV)/drift-check.db

pytest: setup chromium
	$(BIN)/pytest -q

test: lint typecheck migrations-check pytest

test-pg: setup chromium
	RAPPORT_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest -q

clean:
	rm -rf $(VENV) node_modules data .pytest_cache .mypy_cache .ruff_cache
