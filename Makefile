# celery-cluster: `make` lists the targets. Every target creates the virtualenv it needs.
SHELL := /bin/bash
.SHELLFLAGS := -o errexit -o pipefail -o nounset -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
STACK ?= dev
PYTEST_ARGS ?=
ARGS ?=

.PHONY: help venv lint typecheck test test-unit test-integration local bench render build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --editable '.[infra,dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## Create .venv and install the project with every extra

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict over worker, infra, policy and tests
	$(BIN)/mypy worker infra policy tests

test: lint typecheck ## Everything CI runs: lint, type check, every test
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## Only the fast tests (no broker, no subprocess)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

local: $(STAMP) ## The local twin of a stack: broker, metrics loop, the scaling model, workers as instances (ARGS="--stack dev --pool default --trace burst")
	scripts/local $(ARGS)

bench: $(STAMP) ## Benchmarks, printed side by side with ratios
	scripts/bench

render: $(STAMP) ## Render the Pulumi program offline for STACK (default dev) to build/render/STACK.json
	scripts/render --stack $(STACK)

build: $(STAMP) ## Write build/dist: worker wheel, wheelhouse per pool arch, publisher.zip, manifest.json (reproducible)
	scripts/build

clean: ## Remove .venv and build/
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
