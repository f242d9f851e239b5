# Two commands: `make demo` (the whole product on a synthetic cohort) and `make test`.
# Both create .venv on first use. torch is installed first, pinned to a CPU build where the
# package index has one; elsewhere any torch>=2.2 comes from PyPI. The test extra's zennit needs
# torchvision, whose PyPI wheels are linked against CUDA torch: installing it replaces the CPU
# build with the CUDA torch its newest release wants (a torchvision pinned beside the CPU torch
# fails to load its operators), so the test environment runs a CUDA build on the CPU.
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

# Debian packages some tests need, installed here where missing and apt-get can: mricron-data
# (the AAL atlas), slurm-wlm and munge (the one-node SLURM cluster of tests/test_slurm.py) and
# chromium (the reports opened in a browser); those tests fail without them. The daemons live in
# sbin, which a minimal PATH lacks.
export PATH := $(PATH):/usr/sbin:/sbin
test: $(BIN)/.installed
	@missing=""; \
	[ -f /usr/share/mricron/templates/aal.nii.gz ] || missing="$$missing mricron-data"; \
	command -v slurmctld >/dev/null || missing="$$missing slurm-wlm"; \
	command -v munged >/dev/null || missing="$$missing munge"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -z "$$missing" ] || ! command -v apt-get >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq $$missing) >/dev/null 2>&1 || \
		echo "make: could not install$$missing; the tests that need them will fail"
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
