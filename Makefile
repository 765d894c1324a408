# The set-up and run commands; see README.md.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps services test chaos demo bench lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

system-deps:
	bash scripts/system-deps.sh

services:
	bash scripts/services.sh

test: system-deps services install
	$(BIN)/pytest $(PYTEST_ARGS)

# The full fault scenarios of tests/reliability (heavy: about 20 minutes); figures to bench/results.json.
chaos: system-deps services install
	$(BIN)/pytest --chaos -m chaos tests/reliability $(PYTEST_ARGS)

demo: system-deps services install
	$(BIN)/python -m exsync.demo

bench: system-deps services install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check exsync tests bench

clean:
	rm -rf $(VENV) var build *.egg-info
