# Birga: the two set-up commands. `make run` serves the app with demo data; `make test` runs
# the whole suite (SQLite, then PostgreSQL when TEST_DATABASE_URL is set).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.birga-installed
HOST   ?= 127.0.0.1
PORT   ?= 5000
export BIRGA_SESSION_COOKIE_SECURE ?= false

.PHONY: run test install check-system lint i18n clean

run: install
	$(BIN)/birga init
	$(BIN)/birga demo
	@# One job worker next to the server; it stops when the server stops (Ctrl-C included).
	@$(BIN)/birga worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	HOST=$(HOST) PORT=$(PORT) $(BIN)/birga serve

test: install
	@bash scripts/check-system.sh --test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q
	@if [ -n "$(TEST_DATABASE_URL)" ]; then \
	  echo "== again on PostgreSQL: $(TEST_DATABASE_URL)"; \
	  BIRGA_TEST_DATABASE_URL="$(TEST_DATABASE_URL)" $(BIN)/python -m pytest -q -m "not browser"; \
	fi

install: $(STAMP)
	@$(BIN)/birga i18n compile >/dev/null

$(STAMP): pyproject.toml scripts/check-system.sh
	@bash scripts/check-system.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

lint: install
	$(BIN)/ruff check .

i18n: install
	$(BIN)/birga i18n update

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
