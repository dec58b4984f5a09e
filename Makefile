# Two set-up commands: `make reproduce` (the pipeline on the embedded default) and `make test`.
# Both create .venv when missing and install the pinned environment: torch==2.13.0 first, on
# its own, then requirements.txt, then this package (editable). A second call reuses the venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.scratchlm-installed

.PHONY: reproduce test test-quick sync clean-venv

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

reproduce: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --cores all

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest

test-quick: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest -m "not slow"

sync: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" scratchlm sync

clean-venv:
	rm -rf $(VENV)
