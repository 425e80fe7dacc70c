"""The runner's check of a finished run from before identity.json (what its metrics.json leaves out is inferred)."""

import pytest
from omegaconf import OmegaConf

from mesimp.errors import UserError
from mesimp.runner import check_same_method
from tests.helpers import compose_config

# A tagger run at the paper's AdaGrad rate 0.1, k=5, whose metrics.json records neither its gates nor its dL/dx.
PREVIOUS = {"task": "pos", "k": 5, "k_ratio": None, "rule": "topk", "lr_schedule": "constant", "lr": 0.1}
NAMED = ["task=pos", "optim=adagrad", "optim.lr=0.1", "k=5", "meprop.gates=per_gate", "meprop.input_grad=topk"]


def tagger(*overrides):
    return OmegaConf.to_object(compose_config(*overrides))


def test_unrecorded_setting_left_to_its_default_is_taken_as_the_papers(tmp_path):
    # The command leaves the gates to the tagger's default (per_gate): the run may be from before the option, when
    # every run ranked all gates together, so it is refused rather than returned as this command's result.
    overrides = [o for o in NAMED if not o.startswith("meprop.gates")]
    with pytest.raises(UserError, match=r"meprop\.gates=joint, not per_gate"):
        check_same_method(tagger(*overrides), PREVIOUS, tmp_path / "metrics.json", overrides)


def test_unrecorded_setting_named_by_the_command_is_what_the_run_there_ran(tmp_path):
    check_same_method(tagger(*NAMED), PREVIOUS, tmp_path / "metrics.json", NAMED)


def test_recorded_setting_is_checked_even_when_named(tmp_path):
    overrides = [o if o != "optim.lr=0.1" else "optim.lr=0.05" for o in NAMED]
    with pytest.raises(UserError, match=r"optim\.lr=0\.1, not 0\.05"):
        check_same_method(tagger(*overrides), PREVIOUS, tmp_path / "metrics.json", overrides)
