# sessionrec: `make demo` runs the main job, `make test` runs the tests (both set up .venv first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU facts measured on this kind of machine (see docs/performance.md): avoid spinning threads
# and slow page faults on large fresh tensors.
export OMP_WAIT_POLICY ?= PASSIVE
export THP_MEM_ALLOC_ENABLE ?= 1
export MALLOC_MMAP_MAX_ ?= 0
export MALLOC_TRIM_THRESHOLD_ ?= 100000000000

.PHONY: setup demo test lint clean

$(BIN)/sessionrec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# Exact pin: the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,ann]'
	touch $@

setup: $(BIN)/sessionrec

demo: setup
	$(BIN)/sessionrec demo

test: setup
	$(BIN)/python -m pytest tests

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
