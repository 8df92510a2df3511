# Every target sets up .venv itself; a newcomer needs only `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# dvc.yaml runs `mlgitops stage ...`; the venv's bin must come first on PATH.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := True

PYTEST_ARGS ?=

.PHONY: help setup lock data run repro summary test lint format serve image bench clean monitor-demo

help: ## List the documented targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The venv is made from requirements.lock only: exact versions, every file checked by its hash,
# so every machine runs (and every bento pins) the same libraries. `make lock` updates it.
# uv installs it (in seconds where pip takes minutes); uv itself comes from PyPI by its pin and
# hashes in the lock, installed by the venv's bundled pip. `uv pip sync` then makes the venv
# exactly the lock's closure (pip included: the lock pins it, the image's wheelhouse runs it).
UV_PIN := $(VENV)/uv-requirement.txt
$(STAMP): requirements.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	awk '/^uv==/ {pin = 1; print; next} pin && /^[^ ]/ {pin = 0} pin' requirements.lock > $(UV_PIN)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(UV_PIN)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes --compile-bytecode requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP) ## Create .venv from requirements.lock and install mlgitops into it

# Resolved for CPython 3.11 on Linux (the image's interpreter), with the hashes of every file of
# each pinned release, and no index address written into the repository.
lock: $(STAMP) ## Re-resolve requirements.lock from pyproject.toml (newest versions in its ranges)
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform linux \
	  --generate-hashes --no-header --quiet -o requirements.lock
	@echo "requirements.lock updated; run 'make setup' and 'dvc repro' (the bento pins change)"

data: $(STAMP) ## Materialize the dataset of data.dvc (dvc pull, else regenerate and verify)
	mlgitops data materialize

run: data ## Set up, materialize the data, run `dvc repro`, print the release summary
	dvc repro
	mlgitops summary

repro: $(STAMP) ## Run `dvc repro` only
	dvc repro

summary: $(STAMP) ## Print the release record and headline metrics
	mlgitops summary

# One worker per core. Each test file (or package with costly shared fixtures) stays on one
# worker, and those with `slow` tests go first, in this order (tests/conftest.py groups and sorts
# them), so no long scenario starts last. Builds many tests share, such as the first release of
# a project, are made once per run for all workers (tests/support/shared.py). The ten slowest
# tests are listed at the end, so a change that slows the suite shows where.
test: $(STAMP) ## Set up and run the whole test suite on every core
	pytest -n auto --dist loadfile --no-loadscope-reorder --durations=10 $(PYTEST_ARGS)

lint: $(STAMP) ## Lint and check formatting with ruff
	ruff check .
	ruff format --check .

format: $(STAMP) ## Format the code with ruff
	ruff check --fix .
	ruff format .

serve: $(STAMP) ## Serve the current commit's bento on 127.0.0.1:3000, logging to reports/serve/
	mlgitops serve

image: $(STAMP) ## Build the OCI image of the current commit's bento with buildah
	mlgitops image build

bench: $(STAMP) ## Run the benchmarks (slow; figures on each last line)
	python benchmarks/pipeline.py
	python benchmarks/serving.py
	python benchmarks/serving_attacks.py
	python benchmarks/export.py
	python benchmarks/deploy.py
	python benchmarks/monitor.py

clean: ## Remove the virtual environment and caches (keeps data and artifacts)
	rm -rf $(VENV) .pytest_cache .ruff_cache

SCENARIO ?= broken_feature
monitor-demo: $(STAMP) ## Replay a scenario (SCENARIO=...) through the served release, then monitor it
	mlgitops monitor-demo --scenario $(SCENARIO)
