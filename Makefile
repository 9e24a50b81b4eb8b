# Two commands: `make demo` and `make test`. Each (re)creates .venv when it is missing or when
# pyproject.toml changed since the last install, installs the project with its test extra, then runs.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
BIN    := $(VENV)/bin

.PHONY: demo test test-fast lint bench benchmarks-doc install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nwb-lfads demo --out demo_out

# lint and format checks first (ruff settings in pyproject.toml); any failure stops make nonzero
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -ra -m "not slow"

bench: $(STAMP)
	for f in bench/*.py; do $(BIN)/python $$f; done

# docs/BENCHMARKS.md from bench/results/ (standard library only: no venv needed)
benchmarks-doc:
	$(PYTHON) bench/benchmarks_doc.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
