# Xueliang edge. `make demo` and `make test` each set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := agent,hub,provision,dev,replay
# Two pytest workers (this machine and CI have 2 cores): the emulated Pi's ~10 minutes run
# beside everything else. `make test XDIST=` runs in one process.
XDIST ?= -n 2 --dist loadscope --no-loadscope-reorder

.PHONY: install system demo test test-fast bench lint lock model clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $(STAMP)

install: $(STAMP)

# System services the tests and the demo talk to (Mosquitto, PostgreSQL, Chromium).
system:
	@bash tools/ensure-system.sh

demo: install system
	$(PY) -m sim.demo

test: install system
	$(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -x -m "not slow" $(PYTEST_ARGS)

bench: install system
	$(PY) bench/run_all.py

# Lint and types: ruff's rules and formatting on everything, mypy --strict on the
# product code (pyproject's [tool.mypy] names it). CI runs this as well as `make test`.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Re-pin after changing dependencies: a clean venv, then freeze into constraints.txt.
lock:
	rm -rf /tmp/xl-lock && $(PYTHON) -m venv /tmp/xl-lock
	/tmp/xl-lock/bin/pip install -q --upgrade pip
	/tmp/xl-lock/bin/pip install -q -e ".[$(EXTRAS)]"
	{ head -2 constraints.txt; /tmp/xl-lock/bin/pip freeze --exclude-editable | grep -v '^xueliang'; } > constraints.new
	mv constraints.new constraints.txt

# Rebuild the TFLite person model in a throwaway TensorFlow venv (never a runtime dependency).
model:
	bash tools/model/build.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
