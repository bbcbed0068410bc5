# kubelab: `make demo` builds the cluster on the local lab, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INVENTORY ?= inventory.py
HOST ?= kubemaster

.PHONY: venv lint unit test prebuild e2e demo docs lab-up lab-down lab-ssh lab-status lab-purge bench fresh-deploys conformance clean

$(VENV)/.installed: requirements-ci.txt pyproject.toml
	$(PYTHON) -m venv $(VENV) || { apt-get update -q && apt-get install -y -q python3-venv \
		&& $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-ci.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check kubelab deploys tests group_data inventory.py
	$(VENV)/bin/ruff format --check kubelab deploys tests group_data inventory.py

unit: venv
	$(PY) -m pytest tests/unit -q

# Unit tests beside the lab's builds (a fresh machine's Go builds overlap the unit tests), then
# the local lab end to end (root only; CI=true makes it mandatory).
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=target unit prebuild
	$(MAKE) --no-print-directory e2e

prebuild: venv
	$(PY) tests/lab/prebuild.py

e2e: venv
	$(PY) tests/lab/e2e.py

lab-up: venv
	$(PY) tests/lab/lab.py up -i $(INVENTORY)

lab-down:
	$(PYTHON) tests/lab/lab.py down

lab-status:
	$(PYTHON) tests/lab/lab.py status

lab-ssh:
	$(PYTHON) tests/lab/lab.py ssh $(HOST)

lab-purge:
	$(PYTHON) tests/lab/lab.py purge

# The README's settings table, from the settings' declarations (kubelab/settings/*_settings.py).
docs: venv
	cd tests/unit && ../../$(PY) update_readme.py

# The main job on the local lab: lab up, deploy, specs, timings; the lab stays up.
demo: venv
	$(PY) tests/lab/demo.py -i $(INVENTORY)

bench: venv
	$(PY) tests/lab/bench.py

# The first deploy of a fresh lab, 10 times in a row: does any stall?
fresh-deploys: venv
	$(PY) tests/lab/fresh_deploys.py -i $(INVENTORY)

# Kubernetes' conformance suite on the lab's cluster (hours; not part of `make test`): builds
# e2e.test, ginkgo and the suite's images, lab up, deploy, then the [Conformance] tests
# (FOCUS=<regex>: those whose names match). Reports and summary in .lab/conformance/.
conformance: export CONFORMANCE_FOCUS = $(FOCUS)
conformance: venv
	$(PY) tests/lab/conformance.py --focus="$$CONFORMANCE_FOCUS"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
