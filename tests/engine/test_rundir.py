"""A run directory's lock, leftovers and identity."""

import fcntl
import os

import pytest

from mesimp.engine import rundir
from mesimp.engine.rundir import Refused
from tests.helpers import compose_config


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    with rundir.exclusive(tmp_path):
        assert (tmp_path / rundir.LOCK).read_text() == f"{os.getpid()}\n"
        with pytest.raises(Refused, match=rf"in use by another run \(pid {os.getpid()}\)"):
            with rundir.exclusive(tmp_path):
                pass
    with rundir.exclusive(tmp_path):  # released on exit
        pass


def test_the_lock_is_released_by_a_dead_holder(tmp_path):
    fd = os.open(tmp_path / rundir.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.close(fd)  # as the kernel does for a killed process
    with rundir.exclusive(tmp_path):
        pass


def test_leftover_temporaries_are_removed(tmp_path):
    (tmp_path / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half")
    (tmp_path / ".metrics.json.a.tmp").write_text("{")
    (tmp_path / "checkpoint.pt").write_bytes(b"kept")
    rundir.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_identity_ignores_what_does_not_change_the_result(tmp_path):
    data = tmp_path / "train.txt"
    data.write_text("abc")
    base = rundir.identity(compose_config("k=20"), [data])
    same = rundir.identity(compose_config("k=20", "threads=3", "resume=false", "data.root=/elsewhere", "device=cpu"),
                           [data])
    assert base == same
    assert base["data"] == [{"file": str(data), "bytes": 3,
                             "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]
    rundir.check_identity(tmp_path, base, same)


def test_other_settings_or_other_data_are_refused(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("one")
    second.write_text("two")
    recorded = rundir.identity(compose_config("k=20"), [first])
    with pytest.raises(Refused, match=r"holds a run with optim\.lr=0\.001, not 0\.5: resume=false retrains"):
        rundir.check_identity(tmp_path, recorded, rundir.identity(compose_config("k=20", "optim.lr=0.5"), [first]))
    with pytest.raises(Refused, match=rf"trained on other data \({first} then, {second} now differ\)"):
        rundir.check_identity(tmp_path, recorded, rundir.identity(compose_config("k=20"), [second]))
    with pytest.raises(Refused, match=r"1 data file\(s\) then, 2 now"):
        rundir.check_identity(tmp_path, recorded, rundir.identity(compose_config("k=20"), [first, second]))


def test_a_setting_added_since_the_run_started_is_not_a_difference(tmp_path):
    recorded = rundir.identity(compose_config("k=20"), [])
    del recorded["config"]["diagnostics_every"]
    rundir.check_identity(tmp_path, recorded, rundir.identity(compose_config("k=20"), []))


def test_a_run_from_before_a_setting_existed_ran_its_old_behaviour(tmp_path):
    """MNIST's rate became cosine and the tagger's gates per_gate after runs without those keys were recorded:
    such a run must not pass for one under the new default."""
    recorded = rundir.identity(compose_config("task=mnist", "k=20"), [])
    del recorded["config"]["optim"]["lr_schedule"]
    with pytest.raises(Refused, match=r"holds a run with optim\.lr_schedule=constant, not cosine"):
        rundir.check_identity(tmp_path, recorded, rundir.identity(compose_config("task=mnist", "k=20"), []))
    rundir.check_identity(tmp_path, recorded, rundir.identity(
        compose_config("task=mnist", "k=20", "optim.lr_schedule=constant"), []))
    recorded = rundir.identity(compose_config("task=pos", "k=5"), [])
    del recorded["config"]["meprop"]["gates"]
    with pytest.raises(Refused, match=r"holds a run with meprop\.gates=joint, not per_gate"):
        rundir.check_identity(tmp_path, recorded, rundir.identity(compose_config("task=pos", "k=5"), []))
    del recorded["config"]["meprop"]["input_grad"]
    with pytest.raises(Refused, match=r"holds a run with meprop\.input_grad=topk, not dense"):
        rundir.check_identity(tmp_path, recorded, rundir.identity(
            compose_config("task=pos", "k=5", "meprop.gates=joint", "meprop.input_grad=dense"), []))


def test_a_run_is_its_effective_learning_rate_not_the_table_of_defaults(tmp_path):
    """A rate given or taken from the task's default_lr is the same run; a default changing later disowns only
    the runs that used it (recorded: with default_lr in the config, as before this rule)."""
    recorded = rundir.identity(compose_config("task=pos", "k=5", "optim=adagrad"), [])
    assert "default_lr" not in recorded["config"] and recorded["config"]["optim"]["lr"] is not None
    old = {"data": [], "config": {**recorded["config"], "optim": {**recorded["config"]["optim"], "lr": None},
                                  "default_lr": {"adam": 0.001, "adagrad": 0.02}}}
    rundir.check_identity(tmp_path, old, rundir.identity(
        compose_config("task=pos", "k=5", "optim=adagrad", "optim.lr=0.02"), []))
    with pytest.raises(Refused, match=r"holds a run with optim\.lr=0\.02, not 0\.03"):
        rundir.check_identity(tmp_path, old, rundir.identity(
            compose_config("task=pos", "k=5", "optim=adagrad", "default_lr.adagrad=0.03"), []))
    adam = rundir.identity(compose_config("task=pos", "k=5"), [])
    adam["config"]["default_lr"] = {"adam": 0.001, "adagrad": 0.02}
    adam["config"]["optim"]["lr"] = None
    rundir.check_identity(tmp_path, adam, rundir.identity(
        compose_config("task=pos", "k=5", "default_lr.adagrad=0.03"), []))


def test_settings_of_a_method_the_run_does_not_use_are_not_its_identity(tmp_path):
    """The tagger's default gates changed after full-backprop runs recorded the old ones: still the same runs."""
    recorded = rundir.identity(compose_config("task=pos", "k=null", "meprop.gates=joint"), [])
    assert "meprop" not in recorded["config"] and recorded["config"]["simplify"] == {"enabled": False}
    old = rundir.identity(compose_config("task=pos", "k=null"), [])
    old["config"]["meprop"] = {"gates": "joint"}  # as recorded before this rule
    old["config"]["simplify"]["prune_rate"] = 0.5
    rundir.check_identity(tmp_path, old, rundir.identity(compose_config("task=pos", "k=null"), []))
    meprop = rundir.identity(compose_config("task=pos", "k=5", "meprop.gates=joint"), [])
    with pytest.raises(Refused, match=r"meprop\.gates=joint, not per_gate"):
        rundir.check_identity(tmp_path, meprop, rundir.identity(compose_config("task=pos", "k=5"), []))
    mesimp = rundir.identity(compose_config("k=20", "simplify=mesimp"), [])
    with pytest.raises(Refused, match=r"simplify\.prune_rate=0\.1, not 0\.3"):
        rundir.check_identity(tmp_path, mesimp, rundir.identity(
            compose_config("k=20", "simplify=mesimp", "simplify.prune_rate=0.3"), []))


def test_an_unreadable_identity_is_refused(tmp_path):
    assert rundir.recorded_identity(tmp_path) is None
    (tmp_path / rundir.IDENTITY).write_text('{"config": {')
    with pytest.raises(Refused, match="unreadable"):
        rundir.recorded_identity(tmp_path)
