# Open Service Mesh (Python). `make test` works on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck imports unit run-example system-deps clean

test: system-deps $(STAMP) lint typecheck imports
	$(PY) -m pytest -q -p no:cacheprovider --cov=osm --cov-report=term --cov-fail-under=80 $(PYTEST_ARGS)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# iproute2 and iptables for the network-namespace tests (installed only when root and missing).
system-deps:
	@if [ "$$(id -u)" = 0 ] && ! { command -v ip >/dev/null && command -v iptables-restore >/dev/null; }; then \
		apt-get update -qq && apt-get install -y -qq iproute2 iptables >/dev/null; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict src

imports: $(STAMP)
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(PY) -m pytest -q -m "not envoy and not netns"

# Runs the control plane on the example mesh until Ctrl-C.
run-example: $(STAMP)
	$(VENV)/bin/osm-controller --local examples/bookstore --state-dir .osm-state

clean:
	rm -rf $(VENV) .osm-state .coverage
