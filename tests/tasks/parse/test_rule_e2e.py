"""End to end (slow): per-example meProp k=20 trains a parser with the parser's default rule, where the paper's rule
does not (issue 15). A WSJ-sample slice at minibatch 1,000, through the real command line."""

import json

import pytest

from mesimp.report.sweep import make_job
from tests.helpers import train

SLICE = ["task=parse", "data.name=ptb_wsj_sample", "data.train_limit=1500", "batch_size=1000", "epochs=6",
         "evals_per_epoch=2", "threads=1"]



def uas(tmp_path, shared_data, *overrides) -> float:
    result = train(*SLICE, *overrides, runs=tmp_path, data=shared_data)
    assert result.returncode == 0, result.stderr
    run_dir = make_job([*SLICE, *overrides]).path(tmp_path)
    return json.loads((run_dir / "metrics.json").read_text())["test_at_best_dev"]


@pytest.mark.slow
def test_default_rule_trains_the_parser_as_full_backprop_does(tmp_path, shared_data):
    full = uas(tmp_path, shared_data, "k=null")
    default_rule = uas(tmp_path, shared_data, "k=20")
    papers_rule = uas(tmp_path, shared_data, "k=20", "meprop.rule=topk")
    assert default_rule > full - 3.0, (full, default_rule)
    assert papers_rule < full - 10.0, (full, papers_rule)  # the failure the default rule fixes
