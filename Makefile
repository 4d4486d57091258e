# Two commands: `make run` (set up, then the whole pipeline on the default config)
# and `make test` (set up, then the tests and a strict build of the documentation).
# `make docs` renders the generated pages that need no run and builds the site into site/.
# `make slurm-test` runs the tiny configuration through `snakemake --profile slurm` on a
# single-node SLURM cluster it starts (root, apt-get).
# Installs come from requirements.lock (exact versions); `make lock` refreshes it.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
CORES ?=# empty: every core of this machine (profiles/default sets `cores: all`)
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Material for MkDocs prints an announcement of its successor on every build; the build itself is clean.
export NO_MKDOCS_2_WARNING := 1

.PHONY: run test lint format docs gpu-check slurm-test setup data lock clean

# Quiet unless it fails: pip's output goes to $(VENV)/setup.log, whose tail is shown on failure.
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	@echo "setting up $(VENV) from requirements.lock (log: $(VENV)/setup.log)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@{ $(VENV)/bin/python -m pip install $$(grep '^pip==' requirements.lock) \
	   && $(VENV)/bin/python -m pip install -r requirements.lock \
	   && $(VENV)/bin/python -m pip install --no-deps -e . ; } > $(VENV)/setup.log 2>&1 \
	  || { tail -n 30 $(VENV)/setup.log; echo "set-up failed; the whole log: $(VENV)/setup.log"; exit 1; }
	@touch $@

# The lock: a fresh environment installed from pyproject.toml's ranges (with the test extras),
# frozen. Commit the result; every install above, CI's and envs/lowdensity.yaml's use it.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet '.[test,docs]'
	{ echo "# Exact versions for Linux x86_64, Python 3.11 (CI's platform); refresh with 'make lock'."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude lowdensity; } > requirements.lock
	rm -rf .lock-venv

# The default data: Debian's dataset-fashion-mnist (MIT licence), installed where apt-get is available.
data:
	@if [ ! -f $(FASHION_MNIST) ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } > /tmp/lowdensity-apt.log 2>&1 \
	      || { tail -n 20 /tmp/lowdensity-apt.log; exit 1; }; \
	  elif command -v sudo >/dev/null; then \
	    { sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } > /tmp/lowdensity-apt.log 2>&1 \
	      || { tail -n 20 /tmp/lowdensity-apt.log; exit 1; }; \
	  else \
	    echo "Fashion-MNIST not found: install the Debian package dataset-fashion-mnist, or put the four *-ubyte.gz files in a folder and set data.root in config.yaml"; exit 1; \
	  fi; \
	fi

run: setup data
	snakemake $(if $(CORES),--cores $(CORES))

test: setup data lint
	pytest
	mkdocs build --strict --quiet

# The house style (line length 120; pyproject.toml's [tool.ruff] and [tool.snakefmt]); `make format` applies it.
lint: setup
	ruff check .
	ruff format --check .
	snakefmt --check .

format: setup
	ruff check --fix .
	ruff format .
	snakefmt .

# The results and samplers pages come from a run (`snakemake docs`); these need only the repository.
docs: setup
	lowdensity render-docs --pages '[configuration, performance, gpu_hours]'
	mkdocs build --strict

# On a machine with CUDA: the paper-scale training, sampling and search costs in a few minutes,
# written to benchmarks/runs/gpu-<date>.csv (the GPU-hours page reads it). Without CUDA it says so.
gpu-check: setup
	python benchmarks/gpu_check.py

slurm-test: setup data
	bash tests/slurm/run.sh

clean:
	rm -rf results paper_figures logs .snakemake
