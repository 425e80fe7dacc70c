"""Where the reproduction's runs and report live, and what FAST=1 cuts."""

from __future__ import annotations

import os
from pathlib import Path

from mesimp.report.sweep import Extras

# The full grid: every job of the experiments the report reads (MNIST with 3 seeds each; parsing and POS one seed
# each on EWT and the WSJ sample; 186 runs with the same-size twins of the meSimp runs) and the benchmark. Measured
# on the 2-core development machine, two runs at a time with one thread each: an MNIST run 4-6 minutes, a parser
# run 6-15, a tagger run 5-20, so about 15-20 run-hours, 7-10 hours of wall time.
DEFAULT_ROOT = Path(os.environ.get("MESIMP_RUNS") or "runs")  # the runner's own runs root
DEFAULT_OUT = Path("results") / "paper"
# FAST runs differ (and are named differently) from the real ones; they and their report stay out of results/
FAST_ROOT = DEFAULT_ROOT / "fast"
FAST_OUT = FAST_ROOT / "report"

# The reduced grid of `make reproduce-tables FAST=1`: one seed, one short epoch, a slice of the training data and
# only the WSJ sample for the treebank tasks (its dev and test sets are a tenth of EWT's, and evaluation dominates
# short runs). It checks the whole pipeline in minutes; its numbers mean nothing.
FAST = ("seed=1", "epochs=1", "evals_per_epoch=2", "mnist:data.train_limit=2000",
        "parse:data.name=ptb_wsj_sample", "parse:data.train_limit=500",
        "pos:data.name=ptb_wsj_sample", "pos:data.train_limit=300")
# Tables 7-8 read the benchmark's layer group only; --quick shrinks it to seconds (without Table 7's shape)
BENCH_ARGS = ("--groups", "layer,mlp")
FAST_BENCH_ARGS = (*BENCH_ARGS, "--quick")


def extras_from(overrides: list[str], fast: bool) -> Extras:
    """The user's overrides win over FAST's (Hydra: the last override of a key wins)."""
    return Extras((FAST if fast else ()) + tuple(overrides))
