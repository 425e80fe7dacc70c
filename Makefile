# mesimp: `make help` lists the targets.
# Where mesimp runs: the active virtual environment, else a project-local .venv created on first use (it also works
# where the system Python refuses pip installs, PEP 668). Every target that runs mesimp first (re)installs it there
# when pyproject.toml has changed since the last install.
ENV_DIR := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),.venv)
PYTHON := $(ENV_DIR)/bin/python
INSTALLED := $(ENV_DIR)/.mesimp-installed
ARGS ?=
# make reproduce-tables: FAST=1 for the reduced grid; LAUNCHER=local (joblib), slurm or basic; JOBS runs at a time
FAST ?=
LAUNCHER ?= local
JOBS ?= 2

.PHONY: help install test test-all train sweep bench reproduce-tables ablations clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install:  ## (re)install mesimp (editable), its test tools and extras into the active virtual environment, else .venv; torch 2.13.0 (CPU) first where none is present
	@rm -f $(INSTALLED)
	@$(MAKE) --no-print-directory $(INSTALLED)

$(INSTALLED): pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(ENV_DIR)
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "torch==2.13.0"
	$(PYTHON) -m pip install -e ".[dev,sweep,report,slurm]"
	$(PYTHON) -c "from mesimp.nn import kernels; kernels.main()"
	@touch $@

test: $(INSTALLED)  ## the fast test suite (a few minutes)
	$(PYTHON) -m pytest -q

test-all: $(INSTALLED)  ## every test, the slow end-to-end runs included
	$(PYTHON) -m pytest -q -m "slow or not slow"

train: $(INSTALLED)  ## one run: make train ARGS="task=mnist k=20"
	$(PYTHON) -m mesimp.train $(ARGS)

sweep: $(INSTALLED)  ## a k sweep (Hydra multirun): make sweep ARGS="k=10,20,40,80"
	$(PYTHON) -m mesimp.train -m task=mnist $(if $(ARGS),$(ARGS),k=10,20,40,80)

bench: $(INSTALLED)  ## the speed suite, dense vs meProp side by side: make bench ARGS="--groups layer,lstm --json b.json"
	$(PYTHON) -m mesimp.bench $(ARGS)

reproduce-tables: $(INSTALLED)  ## the paper's tables and figures from real runs into results/paper/ (resumable; FAST=1: a reduced grid in minutes, into runs/fast/report/)
	$(PYTHON) -m mesimp.report.reproduce $(if $(filter 1 yes true,$(FAST)),--fast) --launcher $(LAUNCHER) --jobs $(JOBS) $(ARGS)

ablations: $(INSTALLED)  ## the weight-gradient rules side by side (issue 15): missing runs into runs/, tables and figures into results/ablations/
	$(PYTHON) -m mesimp.report.ablations --jobs $(JOBS) $(ARGS)

clean:  ## remove run outputs, caches and build files (not results/)
	rm -rf runs multirun outputs build *.egg-info .pytest_cache  # not .venv: make install redoes it
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
