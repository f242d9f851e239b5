# Two commands: `make demo` (the whole product on a synthetic cohort) and `make test`.
# Both create .venv on first use. torch is installed first, pinned to a CPU build where the
# package index has one; elsewhere any torch>=2.2 comes from PyPI.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0 || $(BIN)/python -m pip install -q "torch>=2.2"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

.PHONY: demo test lint install
install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/bidsxai-demo demo_output

# The browser test needs Debian's chromium: installed here where it is missing and apt-get can.
test: $(BIN)/.installed
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || \
		echo "make: could not install chromium; tests/test_reports_in_browser.py will fail"
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
