# EdgeScreen: one entry point for set-up, tests and the demo.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints.txt
EXTRAS ?= edge,collector,train,export,dev
MODEL_DIR ?= $(HOME)/.cache/edgescreen/models
PYTEST_ARGS ?=
export EDGESCREEN_MODEL_DIR := $(MODEL_DIR)

.PHONY: help venv install system-deps models lint typecheck test test-all demo gpu-check bench install-system uninstall-system clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.installed  ## create .venv and install the project with every extra

install: venv

system-deps:  ## Debian/Ubuntu packages the tests use (Mosquitto, Chromium, ChromeDriver)
	@scripts/system-deps.sh

models: venv  ## fetch the pinned MediaPipe wheel and convert its models to ONNX
	$(BIN)/edgescreen models fetch

lint: venv  ## ruff on the whole tree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv  ## mypy on the whole tree
	$(BIN)/mypy contract edgescreen edge collector training export tests benchmarks

test: system-deps venv models lint typecheck  ## what a pull request must pass
	$(BIN)/pytest -m "not slow and not gpu" $(PYTEST_ARGS)

test-all: system-deps venv models  ## everything that runs without a GPU, slow tests included
	$(BIN)/pytest -m "not gpu" $(PYTEST_ARGS)

demo: system-deps venv models  ## office posture monitor end to end on a built-in clip
	$(BIN)/edgescreen demo

gpu-check:  ## TensorRT engines, edge run and published-size training on a GPU: make gpu-check OUT=DIR [WHEELS=DIR]
	@test -n "$(OUT)" || { echo "usage: make gpu-check OUT=DIR [WHEELS=DIR]" >&2; exit 2; }
	@scripts/gpu-check.sh $(OUT) $(if $(WHEELS),--wheels $(WHEELS))

bench: venv models  ## print the benchmark figures recorded in docs/benchmarks.md
	$(BIN)/python benchmarks/perception.py
	$(BIN)/python benchmarks/edge_pipeline.py
	$(BIN)/python benchmarks/collector_ingest.py
	$(BIN)/python benchmarks/quantization.py

install-system:  ## lay out files, user and systemd units on this host (root)
	scripts/install.sh

uninstall-system:  ## remove what install-system laid out (root)
	scripts/uninstall.sh

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
