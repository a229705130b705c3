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

# hopkur's compiled CPU kernels (EdgeCoupling(method="native")) build on first use and
# are cached; building them here once keeps parallel test workers from each compiling.
kernels: venv
	$(BIN)/python -c "import hopkur; ok, info = hopkur.native_kernels(); print('native kernels:', 'ok' if ok else 'unavailable', '-', info)"

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
