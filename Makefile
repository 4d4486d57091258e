# Two commands: `make run` (set up, then the whole pipeline on the default config)
# and `make test` (set up, then the tests). `make slurm-test` runs the tiny configuration
# through `snakemake --profile slurm` on a single-node SLURM cluster it starts (root, apt-get).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
CORES ?= 2
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test slurm-test setup data clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

# The default data: Debian's dataset-fashion-mnist (MIT licence), installed where apt-get is available.
data:
	@if [ ! -f $(FASHION_MNIST) ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  elif command -v sudo >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  else \
	    echo "Fashion-MNIST not found: install the Debian package dataset-fashion-mnist, or put the four *-ubyte.gz files in a folder and set data.root in config.yaml"; exit 1; \
	  fi; \
	fi

run: setup data
	snakemake --cores $(CORES)

test: setup data
	pytest

slurm-test: setup data
	bash tests/slurm/run.sh

clean:
	rm -rf results paper_figures logs .snakemake
