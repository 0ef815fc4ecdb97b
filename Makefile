# Loyalty Arcade: every set-up step a fresh machine needs, then run, test, lint, bench.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PROTOS := $(shell find protos -name '*.proto' | sort)
INSTALLED := $(VENV)/.installed
GENERATED := gen/.generated
NODE_INSTALLED := node_modules/.installed
ROLE ?= player
SUB ?= m-1

.PHONY: setup proto run test e2e lint format bench mutants demo token clean

setup: $(INSTALLED) $(GENERATED) $(NODE_INSTALLED)

# The virtual environment with pinned packages; the project itself is installed
# editable so `services`, `tools` and the generated `loyalty` stubs import anywhere.
$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -c "import pathlib, site; pathlib.Path(site.getsitepackages()[0], 'loyalty-stubs.pth').write_text('$(CURDIR)/gen\n')"
	touch $@

# Stubs are generated from protos/ and never edited by hand.
proto: $(GENERATED)
$(GENERATED): $(PROTOS) $(INSTALLED)
	rm -rf gen && mkdir -p gen
	$(PY) -m grpc_tools.protoc -I protos --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTOS)
	touch $@

# Node packages for the third-party client tests (connect-web, grpc-js), from the lock file.
$(NODE_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	$(PY) -m tools.suite

test: setup
	$(PY) -m pytest

e2e: setup
	$(PY) -m pytest tests/e2e

demo: setup
	$(PY) -m tools.demo

token: setup
	@$(PY) -m tools.token --role $(ROLE) --sub $(SUB)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(PY) -m bench

# Mutation testing of the pure rules, the kit's outbox and paging ([tool.mutmut] in
# pyproject.toml says which). Slow, so not part of `make test`; the score is printed.
mutants: setup
	rm -rf mutants
	$(BIN)/mutmut run > var/mutants.log 2>&1 || (tail -30 var/mutants.log; exit 1)
	$(BIN)/mutmut export-cicd-stats > /dev/null
	$(PY) -m tools.mutation_score mutants/mutmut-cicd-stats.json

clean:
	rm -rf $(VENV) gen var node_modules mutants .pytest_cache .ruff_cache .hypothesis *.egg-info
	rm -f bench/results/*.json bench/results/*.png bench/results/*.md
