# `make demo`: set up .venv and run the demo recipe. `make test`: set up .venv and run the tests.
# A second run reuses .venv; it is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch; an unpinned torch would pull a multi-gigabyte CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[ml]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[ml,test,onnx]"
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/curate build-mix catalogs/mixes/demo.yaml

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

clean:
	rm -rf runs releases .pytest_cache
