# sessionrec: `make demo` runs the main job, `make test` runs the tests (both set up .venv first).
# .venv holds exactly lock/py311.txt (every package, pinned with hashes, for Python 3.11 on
# Linux x86_64); `make lock` refreshes it, `make test-latest` tries the newest allowed releases.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCK := lock/py311.txt
UV_VERSION := 0.13.9
# Where `make lock` finds the torch CPU wheel: pip's configured find-links, else set TORCH_INDEX
# (for example to --extra-index-url and PyTorch's CPU wheel index).
TORCH_INDEX ?= --find-links $(shell pip config get global.find-links 2>/dev/null || echo $(PIP_FIND_LINKS))
# Runtime settings measured on this kind of machine (docs/performance.md): no spinning idle
# threads, and no slow page faults on large fresh tensors.
export OMP_WAIT_POLICY ?= PASSIVE
export THP_MEM_ALLOC_ENABLE ?= 1
export MALLOC_MMAP_MAX_ ?= 0
export MALLOC_TRIM_THRESHOLD_ ?= 100000000000

.PHONY: setup demo test test-latest lint lock clean

# A new lock or pyproject rebuilds .venv from nothing, so nothing outside the lock lingers.
$(VENV)/.installed: $(LOCK) pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
	  echo "make setup: needs Python 3.11 (the lock is for 3.11); run with PYTHON=/path/to/python3.11" >&2; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-compile --no-deps --no-build-isolation -e .
	$(BIN)/python lock/check.py $(LOCK)
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/sessionrec demo

# Test workers (pytest-xdist): one per core, at most 4 (each holds its own torch and fits).
# loadscope keeps each module in one worker, so a module's fixtures (fitted models, trained
# runs) are built once. (loadgroup would not help: xdist 3.8 marks groups in a node id field
# that pytest 9 no longer reads.)
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(min(4, len(os.sched_getaffinity(0))))' 2>/dev/null || echo 2)

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope tests

lint: setup
	$(BIN)/ruff check src tests benchmarks lock

# Re-resolve every package to the newest release pyproject.toml allows. Commit the new lock only
# after `make clean test` passes on it.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet uv==$(UV_VERSION)
	.venv-lock/bin/uv pip compile pyproject.toml --extra dev --extra ann --extra onnx --upgrade \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	  --constraint lock/constraints.in $(TORCH_INDEX) --no-header --annotation-style line \
	  --output-file $(LOCK)
	rm -rf .venv-lock

# The suite against the newest releases pyproject.toml allows (torch stays the pinned CPU
# build), in .venv-latest: shows breaking releases before a lock refresh does. Not part of CI.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --no-compile --upgrade --upgrade-strategy eager \
	  torch==2.13.0 -e '.[dev,ann,onnx]'
	.venv-latest/bin/pip freeze --exclude-editable
	SESSIONREC_UNLOCKED=1 .venv-latest/bin/python -m pytest tests

clean:
	rm -rf $(VENV) .venv-latest .venv-lock runs .pytest_cache
