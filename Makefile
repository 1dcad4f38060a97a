# edge-augment developer commands. `make demo` and `make test` work on a fresh machine (Python 3.11 + make).
# One venv, filled by purpose: each stamp installs one requirements file (named by its hash, so an edit reinstalls).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/pip install --quiet --disable-pip-version-check
hash    = $(shell cat $(1) | sha256sum | cut -c1-12)
RUNTIME = $(VENV)/.runtime-$(call hash,requirements.txt)
DEV     = $(VENV)/.dev-$(call hash,requirements.txt requirements-dev.txt)
TORCH   = $(VENV)/.torch-$(call hash,bench/requirements-quality.txt)
DOCS    = $(VENV)/.docs-$(call hash,docs/requirements.txt)
FIGURES = $(VENV)/.figures-$(call hash,bench/requirements-figures.txt)

.PHONY: demo test test-torch lint format docs figures bench quality container ei-local push push-standalone clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The block's runtime dependencies only (what the image has): enough for `make demo`.
$(RUNTIME): requirements.txt | $(BIN)/python
	$(PIP) -r requirements.txt
	rm -f $(VENV)/.runtime-*; touch $@

# + test and lint tools (no PyTorch).
$(DEV): requirements.txt requirements-dev.txt | $(BIN)/python
	$(PIP) -r requirements-dev.txt
	rm -f $(VENV)/.dev-*; touch $@

# + PyTorch, for the quality bench and the tests that train a model (see docs/development.md for a CPU-only build).
$(TORCH): bench/requirements-quality.txt | $(BIN)/python
	$(PIP) -r bench/requirements-quality.txt
	rm -f $(VENV)/.torch-*; touch $@

# + MkDocs and its Material theme, for the documentation site.
$(DOCS): docs/requirements.txt | $(BIN)/python
	$(PIP) -r docs/requirements.txt
	rm -f $(VENV)/.docs-*; touch $@

# + matplotlib, for the charts in docs/images (bench/figures.py).
$(FIGURES): bench/requirements-figures.txt | $(BIN)/python
	$(PIP) -r bench/requirements-figures.txt
	rm -f $(VENV)/.figures-*; touch $@

## Run the block on the built-in sample set: demo/input -> demo/output (no Docker, no credentials).
demo: $(RUNTIME)
	$(BIN)/python -m augment.demo demo/input
	rm -rf demo/output  # a demo always starts afresh (a rerun into outputs of another recipe is refused)
	$(BIN)/python -u transform.py --in-directory demo/input --out-directory demo/output --copies 4 --seed 42 --preview 1

## Lint and the whole test suite but the tests that train a model (no PyTorch needed; the container tests run when
## podman is installed; .ci/run installs it).
test: $(DEV) lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not torch"

## The tests that train a model (marked `torch`; installs PyTorch): .ci/run runs them after `make test`.
test-torch: $(DEV) $(TORCH)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m torch

## The documentation site: regenerate the parameter reference, then build docs/ into site/ (strict: any warning,
## broken link or anchor fails). `$(BIN)/mkdocs serve` shows it while you edit.
docs: $(RUNTIME) $(DOCS)
	$(BIN)/python scripts/docs_reference.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## The charts (from bench/results) and the preview sheets per preset (on the demo set) in docs/images/.
figures: $(RUNTIME) $(FIGURES)
	$(BIN)/python bench/figures.py

lint: $(DEV)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/hadolint --failure-threshold warning Dockerfile

format: $(DEV)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Build the image with podman and run the container + end-to-end tests in it (installs podman if missing; root).
container: $(DEV)
	scripts/container.sh test -n 2 --dist loadgroup

## Run the image the way Edge Impulse does, in each mode (directory, file, standalone): tests/test_ei_local.py.
ei-local: $(DEV)
	scripts/container.sh ei-local

## Benchmarks (bench/run.py): the block vs the workshop notebook (scikit-image, a bench-only tool), the I/O floor, workers, RSS, start-up.
bench: $(RUNTIME)
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python bench/run.py

## Outcome benchmark (bench/quality.py): the workshop CNN trained on each preset's output, 5 paired seeds, scored on
## clean held-out photos and on the field-conditions set (bench/field.py). About 14 minutes on 2 cores.
quality: $(RUNTIME) $(TORCH)
	mkdir -p .cache && $(BIN)/python bench/quality.py --results .cache/quality-$$(date +%Y%m%d-%H%M%S).jsonl

## Push the block to your Edge Impulse organization (needs edge-impulse-cli), each variant from a temporary build
## folder, running `edge-impulse-blocks init` first on a first push: the directory-mode block, or the standalone
## variant (data source; blocks/standalone/parameters.json; EI_BUCKET_ID/EI_BUCKET_NAME declare its bucket mount).
push:
	scripts/push-block.sh directory

push-standalone:
	scripts/push-block.sh standalone

clean:
	rm -rf $(VENV) demo site .pytest_cache .ruff_cache .hypothesis
