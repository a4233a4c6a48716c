# pysim: two commands for users (`make demo`, `make test`), plus `make setup`.
SHELL := /bin/bash
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
export PATH := $(VENV)/bin:$(ROOT)/.tools/bin:$(PATH)
NEXTFLOW ?= nextflow
DEMO_OUT ?= $(ROOT)/demo-results
PYTEST_ARGS ?=

.PHONY: setup setup-python setup-nextflow setup-test-system demo demo-layers test test-fast lint clean

setup: setup-python setup-nextflow

setup-python:
	@scripts/setup-python.sh

setup-nextflow:
	@scripts/setup-nextflow.sh

# System packages only the test suite needs (headless Chromium for the report screenshot,
# SLURM + munge for the one-node cluster test); installed with apt when running as root.
setup-test-system:
	@scripts/setup-test-system.sh

demo: setup
	$(NEXTFLOW) run main.nf -profile test --outdir $(DEMO_OUT) -resume
	@echo "demo report: $(DEMO_OUT)/report/index.html"

# The demo with a layer-wise model table (module patterns): layer x layer heatmaps in the report
demo-layers: setup
	$(NEXTFLOW) run main.nf -profile test --models assets/demo/models_layers.json \
		--outdir $(DEMO_OUT)-layers -resume
	@echo "demo report: $(DEMO_OUT)-layers/report/index.html"

test: setup setup-test-system
	ruff check pysim bin tests benchmarks
	python -m pytest $(PYTEST_ARGS)

# The unit and entry-point tests only: no test marked slow (workflow runs, SLURM, Apptainer,
# the nf-core linter); for quick checks while editing, not a replacement for `make test`
test-fast: setup
	ruff check pysim bin tests benchmarks
	python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup-python
	ruff check pysim bin tests benchmarks

include mk/containers.mk

clean:
	rm -rf work .nextflow .nextflow.log* $(DEMO_OUT) $(DEMO_OUT)-layers .pytest_cache .ruff_cache
