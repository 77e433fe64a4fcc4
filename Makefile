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
	@# With PostgreSQL the two passes run side by side (two cores, about half the wall time);
	@# each test has its own SQLite file or PostgreSQL schema and its own queue name.
	@if [ -n "$(TEST_DATABASE_URL)" ]; then \
	  echo "== SQLite, and PostgreSQL at $(TEST_DATABASE_URL) alongside (its output follows)"; \
	  BIRGA_TEST_DATABASE_URL="$(TEST_DATABASE_URL)" $(BIN)/python -m pytest -q -m "not browser" \
	    > .pytest-postgresql.log 2>&1 & pg=$$!; \
	  $(BIN)/python -m pytest -q; lite=$$?; \
	  wait $$pg; pgrc=$$?; \
	  echo "== PostgreSQL"; cat .pytest-postgresql.log; \
	  test $$lite -eq 0 && test $$pgrc -eq 0; \
	else \
	  $(BIN)/python -m pytest -q; \
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
