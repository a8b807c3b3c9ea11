# celery-cluster: `make` lists the targets. Every target creates the virtualenv it needs.
SHELL := /bin/bash
.SHELLFLAGS := -o errexit -o pipefail -o nounset -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell sha1sum pyproject.toml | cut -c1-12)
STAMP := $(VENV)/.installed-$(HASH)
# `make local` needs only the `local` extra, `make client` only the `build` extra; the full install (STAMP)
# satisfies both.
LOCAL_STAMP := $(VENV)/.installed-local-$(HASH)
CLIENT_STAMP := $(VENV)/.installed-client-$(HASH)
STACK ?= dev
PYTEST_ARGS ?=
# Test files are shared between two pytest processes, a file to one process (so a module's fixtures
# start once); each process starts its own brokers. PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 2
PARALLEL := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)
ARGS ?=

.PHONY: help venv venv-local venv-client lint typecheck test test-unit test-integration mutation local bench render build client clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# --no-compile: byte-compiling every installed module (pulumi_aws alone is 3,141 files) made the install
# take 221 s instead of 72 s; Python compiles what is imported, on first import (docs/testing.md).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --no-compile --editable '.[infra,dev]'
	@rm -f $(VENV)/.installed-* && touch $@ $(LOCAL_STAMP) $(CLIENT_STAMP)

$(LOCAL_STAMP): pyproject.toml
	@echo "make local: installing the worker and the local extra into $(VENV) (first run only, one to two minutes) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --progress-bar off --editable '.[local]' | { grep -E '^(Collecting|Successfully installed)' || true; }
	@rm -f $(VENV)/.installed-local-* && touch $@

$(CLIENT_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --no-compile --editable '.[build]'
	@rm -f $(VENV)/.installed-client-* && touch $@

venv: $(STAMP) ## Create .venv and install the project with every extra

venv-local: $(LOCAL_STAMP) ## Create .venv with only what make local and scripts/simulate need

venv-client: $(CLIENT_STAMP) ## Create .venv with only what make client needs (no Pulumi)

lint: $(STAMP) ## ruff lint and format check; import contracts (layers, no cycles: [tool.importlinter] in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo --no-cache

# mypy's cache is shared by every clone on this machine (it re-checks any module whose content differs, and
# ignores a cache of another mypy version): a fresh clone then type-checks in seconds, not minutes.
MYPY_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/celery-cluster/mypy

typecheck: $(STAMP) ## mypy --strict over the client, worker, infra, policy and tests
	$(BIN)/mypy --cache-dir $(MYPY_CACHE_DIR) celery_cluster_client worker infra policy tests

COVERAGE_DIR := build/coverage
COVERAGE := COVERAGE_FILE=$(CURDIR)/$(COVERAGE_DIR)/.coverage $(BIN)/coverage

test: lint typecheck ## Everything CI runs: lint, type check, every test; coverage of the tests and every Python subprocess they start
	@rm -rf $(COVERAGE_DIR) && mkdir -p $(COVERAGE_DIR)
	$(COVERAGE) run --source=$(CURDIR)/worker,$(CURDIR)/infra,$(CURDIR)/policy -m pytest $(PARALLEL) $(PYTEST_ARGS)
	@$(COVERAGE) combine --quiet
	@$(COVERAGE) report --skip-covered --sort=cover > $(COVERAGE_DIR)/report.txt || true
	@echo "coverage (tests and their subprocesses): $$($(COVERAGE) report --format=total --precision=1) % of worker, infra, policy; floor $$(sed -n 's/^fail_under = //p' pyproject.toml) % (pyproject.toml; files: $(COVERAGE_DIR)/report.txt)"
	@$(COVERAGE) report --format=total > /dev/null

test-unit: $(STAMP) ## Only the fast tests (no broker, no subprocess: tests/unit/conftest.py refuses both)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP) ## Only the integration tests (real brokers, real worker processes)
	$(BIN)/pytest tests/integration $(PARALLEL) $(PYTEST_ARGS)

mutation: $(STAMP) ## Mutation testing (mutmut) of the scaling policy and model, config validation, drain agent, dead letters; an hour, not in CI
	@rm -rf mutants && mkdir -p build/mutation
	$(BIN)/mutmut run --max-children 2 > build/mutation/run.log 2>&1 || { tail -c 3000 build/mutation/run.log; exit 1; }
	$(BIN)/python -m tests.mutation_score

# STACK only when given (`make local STACK=prod`): the default stack is scripts/local's own.
local: $(LOCAL_STAMP) ## The local twin of a stack: broker, metrics loop, the scaling model, workers as instances (STACK=prod, ARGS="--pool default --trace burst")
	scripts/local $(if $(filter command line,$(origin STACK)),--stack $(STACK)) $(ARGS)

bench: $(STAMP) ## Benchmarks, printed side by side with ratios (ARGS="--only periodic-fan-out")
	scripts/bench $(ARGS)

render: $(STAMP) ## Render the Pulumi program offline for STACK (default dev) to build/render/STACK.json (ARGS="--root DIR" for another copy of the stack files)
	scripts/render --stack $(STACK) $(ARGS)

build: $(STAMP) ## Write build/dist: worker wheel, producer client wheel, wheelhouse per pool arch, publisher.zip, manifest.json (reproducible)
	scripts/build

client: $(CLIENT_STAMP) ## Write only the producer client wheel to build/dist (no Pulumi install; what your applications pip install)
	scripts/build --client-only

clean: ## Remove .venv and build/
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
