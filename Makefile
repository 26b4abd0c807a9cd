# The README's two commands are `make book` and `make test`. Both create and reuse the
# project virtual environment in .venv, install the exact pins and `descent` (editable, so
# notebook kernels import the same code), then do their work.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test lint env clean bench gpu-check mutants

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

## make book: build the HTML book from scratch, strictly (warnings are errors) -> _build/html
book: $(STAMP)
	rm -rf _build/html _build/.doctrees
	$(VENV)/bin/jupyter-book build --all --warningiserror --nitpick --keep-going .

## make test: lint, then the whole test suite (library, notebooks, nbgrader, book, browser)
# Two workers (pytest-xdist), each taking whole groups of tests (see tests/conftest.py):
# about 11 minutes instead of 20½ on a quiet 2-core machine (benchmarks/RESULTS.md).
# `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

## make mutants: mutation testing of the grader: every mutant of every solution must lose points
## (the table; `make mutants MUTANTS_FLAGS=--results` also rewrites its section of RESULTS.md)
mutants: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m descent.grading.mutation $(MUTANTS_FLAGS)

lint: $(STAMP)
	$(PY) -m ruff check .

## make bench: descent.optim against torch.optim on this CPU (three model sizes, one thread;
## every path at 10M parameters), round-robin in one process; rewrites the "## Optimizer
## step" section of benchmarks/RESULTS.md. Run it on a quiet machine.
bench: $(STAMP)
	$(PY) benchmarks/bench_optim.py

## make gpu-check: on a machine with CUDA and python3 with torch, numpy, matplotlib,
## scikit-learn and pytest (not the pins): CUDA tests, the optimizer step on CUDA, every
## chapter at its GPU settings, grading -> artifacts/gpu-check.md (RESULTS.md sections).
## DEVICE=cpu QUICK=1: a dry run of every step on the CPU at tiny sizes.
GPU_PYTHON ?= $(if $(and $(filter cpu,$(DEVICE)),$(wildcard $(PY))),$(PY),python3)
gpu-check:
	PYTHONPATH=lib $(GPU_PYTHON) benchmarks/gpu_check.py --device $(or $(DEVICE),cuda) \
		$(if $(QUICK),--quick) --out artifacts/gpu-check.md

clean:
	rm -rf _build dist .pytest_cache .ruff_cache

# Instructor commands (release, autograde, feedback, export, grade): see README.
-include make/instructor.mk
