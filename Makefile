# `make run` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test install-cuda bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# A GPU box: TensorFlow with its CUDA libraries (several GB), then `make run` as usual.
$(VENV)/.installed-cuda: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[cuda]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-cuda: $(VENV)/.installed-cuda

run: install
	$(BIN)/resnet-tui

test: install-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf $(VENV)
