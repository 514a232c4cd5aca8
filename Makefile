# Two entry points set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
COMPILE := ATALAIA_COMPILE=1 $(BIN)/python setup.py --quiet build_ext --inplace

.PHONY: setup compile demo test check lint typecheck bench clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools>=77'
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: compile

# The scoring hot path (pyproject.toml's [tool.atalaia] compiled) compiled to C next to its
# sources; again after an edit (incremental: seconds). Tests and the CLI refuse a compiled
# module older than its source.
compile: $(STAMP)
	$(COMPILE)

demo: compile
	$(BIN)/atalaia demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

# The suite in parallel: integration tests mostly wait on the broker (group joins, topics
# going quiet), so more test processes than cores pay off; each has its own broker and Redis.
TEST_WORKERS ?= 3

test: check compile
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=15

# The pipeline benchmark and its reference (the same transactions through a plain rule in
# Quix Streams, from a virtual environment of its own) record their figures in bench/results/;
# docs/performance.md is rendered from every recorded result.
bench: compile
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.quix_rules
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info build
	find . -path ./$(VENV) -prune -o -name '*.cpython-*.so' -print -delete
