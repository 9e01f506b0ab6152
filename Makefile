# `make demo`: set up .venv and run the demo recipe. `make test`: set up .venv, then lint,
# type-check, check the import layers, and run the tests. `make bench`: every benchmark
# script against its named peer (about 15 minutes on 2 cores), written to BENCHMARKS.md.
# A second run reuses .venv; it is reinstalled only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# constraints.txt pins the CPU wheel of torch for every install below.
PIP_INSTALL := $(BIN)/pip install --quiet -c constraints.txt
# numba compiles the MinHash and shingle kernels once per install (about 18 s), not in a first run.
COMPILE_KERNELS := $(BIN)/python -c "from curate.curation.minhash import compile_kernels; compile_kernels()"

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[ml,image]"
	$(COMPILE_KERNELS)
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[ml,image,test,eval,notebooks,merge,onnx,rag,ray]"
	$(COMPILE_KERNELS)
	touch $@

$(VENV)/.installed-bench: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[ml,image,eval,rag,bench]"
	$(COMPILE_KERNELS)
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/curate build-mix catalogs/mixes/demo.yaml

lint: $(VENV)/.installed-test
	$(BIN)/ruff check curate tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run_all.py --out BENCHMARKS.md

clean:
	rm -rf runs releases .pytest_cache benchmarks/_work
