# hopkur: every target creates the virtual environment first if it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv kernels demo test test-slow lint docs serve-docs figures bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,dev,bench]"
	touch $(STAMP)

# hopkur's compiled CPU kernels (EdgeCoupling(method="native"); "auto" uses them once
# built): compiled once per machine into $HOPKUR_CACHE (default ~/.cache/hopkur), about
# 20-30 s; nothing else ever compiles them. Without a C++ compiler this reports why and
# hopkur uses its JAX formulations.
kernels: venv
	$(BIN)/hopkur kernels build || $(BIN)/hopkur kernels status || true

demo: venv kernels
	$(BIN)/hopkur demo --out outputs/demo --overwrite

test: venv kernels
	$(BIN)/python -m pytest -n 2 -q

test-slow: venv kernels
	$(BIN)/python -m pytest -q -m slow

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

docs-venv: venv
	$(BIN)/python -m pip install -q -e ".[docs]"

docs: docs-venv
	$(BIN)/mkdocs build --strict

serve-docs: docs-venv
	$(BIN)/mkdocs serve

figures: venv
	$(BIN)/python scripts/make_figures.py

bench: venv kernels
	$(BIN)/hopkur bench

clean:
	rm -rf site outputs .pytest_cache
