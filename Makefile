# hopkur: every target creates the virtual environment first if it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-slow lint docs serve-docs figures bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,dev,bench]"
	touch $(STAMP)

demo: venv
	$(BIN)/hopkur demo --out outputs/demo --overwrite

test: venv
	$(BIN)/python -m pytest -n 2 -q

test-slow: venv
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

bench: venv
	$(BIN)/hopkur bench

clean:
	rm -rf site outputs .pytest_cache
