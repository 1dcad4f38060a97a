# edge-augment developer commands. `make demo` and `make test` work on a fresh machine (Python 3.11 + make).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt bench/requirements-quality.txt | sha256sum | cut -c1-12)

.PHONY: demo test lint format bench quality container ei-local push push-standalone clean

$(STAMP): requirements.txt requirements-dev.txt bench/requirements-quality.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*; touch $@

## Run the block on the built-in sample set: demo/input -> demo/output (no Docker, no credentials).
demo: $(STAMP)
	$(BIN)/python -m augment.demo demo/input
	rm -rf demo/output  # a demo always starts afresh (a rerun into outputs of another recipe is refused)
	$(BIN)/python -u transform.py --in-directory demo/input --out-directory demo/output --copies 4 --seed 42 --preview 1

## Lint and the whole test suite (the container tests run when podman is installed; .ci/run installs it).
test: $(STAMP) lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/hadolint --failure-threshold warning Dockerfile

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Build the image with podman and run the container + end-to-end tests in it (installs podman if missing; root).
container: $(STAMP)
	scripts/container.sh test -n 2 --dist loadgroup

## Run the image the way Edge Impulse does, in each mode (directory, file, standalone): tests/test_ei_local.py.
ei-local: $(STAMP)
	scripts/container.sh ei-local

## Benchmarks (bench/run.py): the block vs the workshop notebook (scikit-image, a bench-only tool), the I/O floor, workers, RSS, start-up.
bench: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python bench/run.py

## Outcome benchmark (bench/quality.py): the workshop CNN trained on each preset's output, 5 paired seeds, scored on
## clean held-out photos and on the field-conditions set (bench/field.py). About 14 minutes on 2 cores.
quality: $(STAMP)
	mkdir -p .cache && $(BIN)/python bench/quality.py --results .cache/quality-$$(date +%Y%m%d-%H%M%S).jsonl

## Push the block to your Edge Impulse organization (needs edge-impulse-cli), each variant from a temporary build
## folder, running `edge-impulse-blocks init` first on a first push: the directory-mode block, or the standalone
## variant (data source; blocks/standalone/parameters.json; EI_BUCKET_ID/EI_BUCKET_NAME declare its bucket mount).
push:
	scripts/push-block.sh directory

push-standalone:
	scripts/push-block.sh standalone

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache .hypothesis
