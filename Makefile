# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?= 0
PORT ?= 8000
# An older PostgreSQL than the embedded 18 for `make test-postgres` (Debian 12's: apt-get install postgresql-15).
PG_BIN ?= /usr/lib/postgresql/15/bin

.PHONY: demo test test-postgres lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pgotel demo --port $(PORT) --duration $(DURATION)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

# The tests that run SQL (schema, writes, dashboard queries, end to end) against the PostgreSQL in $(PG_BIN);
# not the outage test (it stops and restarts an embedded server of its own) nor the browser ones (the API's SQL).
test-postgres: $(STAMP)
	bash tests/with_postgres.sh $(PG_BIN) $(BIN)/pytest -q tests/db tests/exporter tests/dashboard tests/test_end_to_end.py \
		--ignore tests/exporter/test_outage.py --ignore tests/dashboard/test_browser.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/request_cost.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/queries.py

clean:
	rm -rf $(VENV) .pgotel
