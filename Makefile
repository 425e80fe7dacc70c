# mesimp: `make help` lists the targets.
PYTHON ?= python
ARGS ?=
# make reproduce-tables: FAST=1 for the reduced grid; LAUNCHER=local (joblib), slurm or basic; JOBS runs at a time
FAST ?=
LAUNCHER ?= local
JOBS ?= 2

.PHONY: help install test test-all train sweep bench reproduce-tables ablations clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install:  ## install mesimp (editable) with the test tools and the extras the tests use; torch 2.13.0 (CPU) first where none is present
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "torch==2.13.0"
	$(PYTHON) -m pip install -e ".[dev,sweep,report,slurm]"
	$(PYTHON) -c "from mesimp.nn import kernels; kernels.main()"

test:  ## the fast test suite (a few minutes)
	$(PYTHON) -m pytest -q

test-all:  ## every test, the slow end-to-end runs included
	$(PYTHON) -m pytest -q -m "slow or not slow"

train:  ## one run: make train ARGS="task=mnist k=20"
	$(PYTHON) -m mesimp.train $(ARGS)

sweep:  ## a k sweep (Hydra multirun): make sweep ARGS="k=10,20,40,80"
	$(PYTHON) -m mesimp.train -m task=mnist $(if $(ARGS),$(ARGS),k=10,20,40,80)

bench:  ## the speed suite, dense vs meProp side by side: make bench ARGS="--groups layer,lstm --json b.json"
	$(PYTHON) -m mesimp.bench $(ARGS)

reproduce-tables:  ## the paper's tables and figures from real runs into results/paper/ (resumable; FAST=1: a reduced grid in minutes, into runs/fast/report/)
	$(PYTHON) -m mesimp.report.reproduce $(if $(filter 1 yes true,$(FAST)),--fast) --launcher $(LAUNCHER) --jobs $(JOBS) $(ARGS)

ablations:  ## the weight-gradient rules side by side (issue 15): missing runs into runs/, tables and figures into results/ablations/
	$(PYTHON) -m mesimp.report.ablations --jobs $(JOBS) $(ARGS)

clean:  ## remove run outputs, caches and build files (not results/)
	rm -rf runs multirun outputs build *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
