# The set-up and run commands; see README.md.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins many libraries of its own: it gets a venv of its own.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# The image installs LOCK; make install installs DEV_LOCK (the same pins, plus the test tools).
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
CHECKOV_LOCK := requirements-checkov.lock
# Locks are resolved for the image's Python on every platform, with the hash of every file.
LOCK_PYTHON := 3.11
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version $(LOCK_PYTHON) \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

.PHONY: install system-deps services test chaos demo bench lint lock clean

install: $(STAMP) $(CHECKOV_STAMP)

$(STAMP): setup.cfg pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

$(CHECKOV_STAMP): $(CHECKOV_LOCK)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --require-hashes -r $(CHECKOV_LOCK)
	touch $(CHECKOV_STAMP)

# Refreshes the locks after a change to setup.cfg: pins already locked stay unless UPGRADE=1.
lock:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet uv; }
	$(UV_COMPILE) setup.cfg -o $(LOCK)
	$(UV_COMPILE) setup.cfg --extra test --extra lint --extra deploy --constraint $(LOCK) -o $(DEV_LOCK)
	$(UV_COMPILE) requirements-checkov.in -o $(CHECKOV_LOCK)

system-deps:
	bash scripts/system-deps.sh

services:
	bash scripts/services.sh

# Lint (ruff, then mypy) first: a type error fails the run before the ten-minute suite starts.
test: system-deps services install lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The full fault scenarios of tests/reliability (heavy: about 20 minutes); figures to bench/results.json.
chaos: system-deps services install
	$(BIN)/pytest --chaos -m chaos tests/reliability $(PYTEST_ARGS)

demo: system-deps services install
	$(BIN)/python -m exsync.demo

bench: system-deps services install
	$(BIN)/python -m bench

# mypy reads its settings (the files it checks, the strictness) from pyproject.toml's [tool.mypy].
lint: install
	$(BIN)/ruff check exsync tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) var build *.egg-info
