# Two set-up commands: `make reproduce` (the pipeline on the embedded default) and `make test`.
# Both create .venv when missing and install the pinned environment: torch==2.13.0 first, on
# its own, then requirements.txt, then this package (editable). A second call reuses the venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.scratchlm-installed

.PHONY: setup reproduce test test-quick lint sync bench plots-template clean-venv

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

setup: $(STAMP)

reproduce: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --cores all

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest

test-quick: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest -m "not slow"

# ruff: 120 columns, import order, no stdlib-shadowing modules, banned unpickling loads (pyproject.toml)
lint: $(STAMP)
	$(BIN)/python -m ruff check .

sync: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" scratchlm sync

# about 16 minutes on 2 cores: results/bench.json and results/bench.md (see benchmarks/run.py);
# options through BENCH_ARGS, e.g. make bench BENCH_ARGS=--skip-demo
bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m benchmarks.run $(BENCH_ARGS)

# DVC's plots page with vega, vega-lite and vega-embed inlined (needs npm): workflow/plots/offline.html
plots-template: $(STAMP)
	$(BIN)/python workflow/plots/build.py

clean-venv:
	rm -rf $(VENV)
