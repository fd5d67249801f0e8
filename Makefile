# The two newcomer commands: `make up` (install, then run FinPulse) and `make test` (install, then every check).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install python jars up down status test lint unit integration docs clients

# `install` = the Python packages and the Kafka broker's jars. lint and unit need only the Python step (no Maven);
# the jars are for the parts that run the real broker (up, integration).
install: python jars

python: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (FinPulse needs Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,fallback]'
	touch $@

# Fetches the Apache Kafka broker's jars into the cache once (needs Java 17 + Maven); later runs return at once.
jars: $(VENV)/.installed
	$(BIN)/python -m finpulse.stack.kafka

up: install
	$(BIN)/finpulse up

down:
	$(BIN)/finpulse down

status:
	$(BIN)/finpulse status

lint: python
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy  # strict on finpulse/, warehouse/, stream/ ([tool.mypy] in pyproject.toml)

unit: python
	$(BIN)/python -m pytest tests/unit

# The Go client test's modules (tests/clients/go), fetched here once so that the test never needs the network.
clients:
	@if command -v go >/dev/null; then cd tests/clients/go && GOFLAGS=-mod=readonly go mod download; \
	else echo "go not found: the Go client test skips (and fails in CI); install Go >= 1.26"; fi

integration: install clients
	$(BIN)/python -m pytest tests/integration --durations=15

# Unit tests first (fast, fail early), then the integration tests on the real local stack.
test: lint unit integration

docs: python  # regenerate the README's settings table from finpulse/settings.py
	$(BIN)/python -m finpulse.docs
