# hopkur: every target creates the virtual environment first if it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
# The tested version of every dependency (pyproject.toml keeps the ranges users get).
CONSTRAINTS := constraints.txt
PIP_INSTALL := $(BIN)/python -m pip install -q -c $(CONSTRAINTS)
# MathJax for the docs site, bundled so that formulas render with no network.
MATHJAX_VERSION := 3.2.2
MATHJAX_DIR := build/mathjax
MATHJAX_STAMP := $(MATHJAX_DIR)/.installed-$(MATHJAX_VERSION)
# pyright's PyPI wrapper otherwise asks PyPI for a newer release on every run.
export PYRIGHT_PYTHON_IGNORE_WARNINGS := 1

.PHONY: venv kernels demo test test-slow lint pre-commit check-constraints docs-venv \
	docs serve-docs figures bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e ".[test,dev,bench,mnist]"
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
	$(BIN)/pyright --pythonpath $(BIN)/python

# The hooks of .pre-commit-config.yaml on every file, with the venv's ruff and pyright.
pre-commit: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pre-commit run --all-files

# Fails when an installed package is missing from constraints.txt or differs from it.
check-constraints: venv
	$(BIN)/python scripts/check_constraints.py $(CONSTRAINTS)

docs-venv: $(DOCS_STAMP) $(MATHJAX_STAMP)

$(DOCS_STAMP): $(STAMP)
	$(PIP_INSTALL) -e ".[docs]"
	touch $(DOCS_STAMP)

# MathJax from the npm registry into build/ (not committed); the docs hook
# docs/_hooks/offline_maths.py copies it into the site and checks the built pages.
$(MATHJAX_STAMP):
	rm -rf $(MATHJAX_DIR)
	mkdir -p $(MATHJAX_DIR)
	npm install --prefix $(MATHJAX_DIR) --no-save --no-package-lock --no-audit \
		--no-fund --ignore-scripts mathjax@$(MATHJAX_VERSION)
	touch $(MATHJAX_STAMP)

docs: docs-venv
	$(BIN)/mkdocs build --strict

serve-docs: docs-venv
	$(BIN)/mkdocs serve

figures: venv
	$(BIN)/python scripts/make_figures.py

bench: venv kernels
	$(BIN)/hopkur bench

clean:
	rm -rf site outputs .pytest_cache build
