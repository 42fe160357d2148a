# `make run` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-slow test-all test-env test-jax install install-test install-cuda bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[tensorflow]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[tensorflow,test]'
	touch $@ $(VENV)/.installed

# A GPU box: TensorFlow with its CUDA libraries (several GB), then `make run` as usual.
$(VENV)/.installed-cuda: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[tensorflow,cuda]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-cuda: $(VENV)/.installed-cuda

run: install
	$(BIN)/resnet-tui

# The fast lane: lint, types, and every test not marked slow (a few minutes on 2 cores).
test: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -m "not slow" -n auto --maxprocesses=4

# The slow lane: subprocess kills, m8 end to end, the real CIFAR-10 sample, Chromium, mirrored training.
test-slow: install-test
	$(BIN)/python -m pytest -q -m slow

test-all: test test-slow

# The tests whose output is text a terminal or a pipe shows (CLI, screens, snapshots, the browser)
# again under a 40-column $COLUMNS and a temporary folder whose path is over 150 characters:
# they must pass whatever the environment (CI runs this after `make test`).
ENV_TESTS := tests/test_cli.py tests/test_export.py tests/test_evaluation.py tests/test_model.py \
	tests/test_serve.py tests/test_tui_small.py tests/test_tui_snapshots.py tests/test_tui_text.py tests/test_tui_sweeps.py \
	tests/test_run_notes.py tests/test_lr_finder.py
test-env: install-test
	@top=$$(mktemp -d) && long=$$top/$$(printf '%0150d' 0) && mkdir -p $$long && \
	echo "COLUMNS=40 TMPDIR=$$long ($${#long} characters)" && \
	COLUMNS=40 TMPDIR=$$long $(BIN)/python -m pytest -q -p no:cacheprovider $(ENV_TESTS); \
	status=$$?; rm -rf $$top; exit $$status

# The JAX lane: an environment with Keras on JAX and without TensorFlow (.venv-jax), where the
# package must do everything (train, resume, dashboard, export) without ever importing TensorFlow.
JAX_VENV := .venv-jax
JAX_TESTS := tests/test_jax.py tests/test_host_pipeline.py tests/test_export.py tests/test_follow.py \
	tests/test_resume.py tests/test_tui_live.py tests/test_training.py tests/test_cli.py tests/test_serve.py \
	tests/test_tui.py tests/test_evaluation.py tests/test_tui_machine.py
$(JAX_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/pip install --quiet --upgrade pip
	$(JAX_VENV)/bin/pip install --quiet -e '.[jax,test]'
	touch $@

test-jax: $(JAX_VENV)/.installed
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m pytest -q -m "not slow" -n auto --maxprocesses=4 $(JAX_TESTS)
	# benchmarks/gpu_check.py --cpu: the GPU check's dry run, where there is no TensorFlow to lean on.
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m pytest -q tests/test_gpu_check.py

bench: install
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf $(VENV) $(JAX_VENV)
