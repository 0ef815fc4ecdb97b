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
WEB_GENERATED := web/gen/.generated
WEB_BUILT := web/dist/.built
# Everything the web apps are built from: a change to any of these rebuilds them.
WEB_SOURCES := $(shell find web/app web/console web/shared -type f 2>/dev/null | sort) web/build.mjs
# The browser tests drive Debian's Chromium; nothing downloads a browser.
CHROMIUM := /usr/bin/chromium
ROLE ?= player
# make run DB=postgres: the services that support it on a local PostgreSQL under var/pg.
DB ?= sqlite
SUB ?= m-1

.PHONY: setup proto run test e2e lint format bench mutants demo token admin clean web browser

setup: $(INSTALLED) $(GENERATED) $(NODE_INSTALLED) $(WEB_GENERATED) browser

# The virtual environment with pinned packages; the project itself is installed
# editable so `services`, `tools` and the generated `loyalty` stubs import anywhere.
$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -c "import pathlib, site; pathlib.Path(site.getsitepackages()[0], 'loyalty-stubs.pth').write_text('$(CURDIR)/gen\n')"
	touch $@

# Stubs are generated from protos/ and never edited by hand.
proto: $(GENERATED) $(WEB_GENERATED)
$(GENERATED): $(PROTOS) $(INSTALLED)
	rm -rf gen && mkdir -p gen
	$(PY) -m grpc_tools.protoc -I protos --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTOS)
	touch $@

# Node packages, from the lock file: the client test packages, and the web apps'
# toolchain (preact, esbuild, typescript, protoc-gen-es, @playwright/test).
$(NODE_INSTALLED): package.json package-lock.json
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	touch $@

# TypeScript stubs for the web apps (buf.gen.yaml: protoc-gen-es from node_modules).
$(WEB_GENERATED): $(PROTOS) buf.gen.yaml $(INSTALLED) $(NODE_INSTALLED)
	rm -rf web/gen
	$(BIN)/buf generate
	touch $@

# The player app and the console, served by the gateway at /app/ and /console/.
web: $(WEB_BUILT)
$(WEB_BUILT): $(WEB_SOURCES) $(WEB_GENERATED)
	node web/build.mjs
	touch $@

# Debian's chromium for the browser tests: installed when missing and we are
# root (as CI is), otherwise a clear stop naming the package.
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  echo "Installing Debian's chromium for the browser tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq chromium > /dev/null || exit 1; \
	else \
	  echo "The browser tests need Chromium at $(CHROMIUM): install the Debian package 'chromium' (as root: apt-get install chromium)" >&2; \
	  exit 1; \
	fi

# `make run` needs no browser: only what serves the suite and the built apps.
run: $(INSTALLED) $(GENERATED) $(NODE_INSTALLED) $(WEB_BUILT)
	$(PY) -m tools.suite --starter --db $(DB)

test: setup $(WEB_BUILT)
	node web/unit.mjs
	$(PY) -m pytest -n auto --dist loadfile

e2e: setup
	$(PY) -m pytest tests/e2e

demo: setup
	$(PY) -m tools.demo $(ARGS)

token: setup
	@$(PY) -m tools.token --role $(ROLE) --sub $(SUB)

# The managers' tool from the checkout: make admin ARGS="plan examples/bonus-48h.yaml".
# Without LOYALTY_TOKEN it signs in as a campaign manager with the development
# gateway's secret (./var, as make run uses); LOYALTY_GATEWAY says where.
admin: $(INSTALLED) $(GENERATED)
	@LOYALTY_TOKEN="$${LOYALTY_TOKEN:-$$($(PY) -m tools.token --role campaign-manager --sub manager)}" \
	  bin/loyalty-admin $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint
	node_modules/.bin/tsc -p web

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
	rm -rf $(VENV) gen var node_modules mutants web/gen web/dist web/test-results .pytest_cache .ruff_cache .hypothesis *.egg-info
	rm -f bench/results/*.json bench/results/*.png bench/results/*.md
