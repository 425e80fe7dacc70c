"""The training loop: chunking, and resuming an interrupted run to the very same result."""

import itertools
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mesimp.engine import trainer as trainer_module
from mesimp.engine.io import load_checkpoint
from mesimp.engine.trainer import CHECKPOINT, chunk_bounds, epoch_order
from mesimp.runner import run
from tests.helpers import compose_config

TIMING_KEYS = {"backprop_time_s", "backward_time_s", "forward_time_s", "train_time_s", "decode_time_s", "finished_at"}


def test_chunk_bounds_cover_every_batch_once():
    for batches, chunks in [(5500, 8), (7, 8), (10, 3), (1, 1)]:
        bounds = chunk_bounds(batches, chunks)
        assert bounds[0][0] == 0 and bounds[-1][1] == batches
        assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))
        assert len(bounds) == min(chunks, batches)


def test_epoch_order_depends_on_seed_and_epoch_only():
    assert torch.equal(epoch_order(1, 3, 50), epoch_order(1, 3, 50))
    assert not torch.equal(epoch_order(1, 3, 50), epoch_order(1, 4, 50))
    assert sorted(epoch_order(2, 0, 50).tolist()) == list(range(50))


def without_timings(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key not in TIMING_KEYS}


MESIMP = ["simplify=mesimp", "simplify.cycle_epochs=1", "simplify.prunes_per_epoch=2", "simplify.prune_rate=0.2",
          "epochs=3"]


@pytest.mark.parametrize("extra", [
    [],
    ["meprop.select=random", "model.dropout=0.2", "optim=adagrad"],
    MESIMP,
    [*MESIMP, "simplify.optimizer_reset=authors", "simplify.k_policy=ratio"],
    ["meprop.rule=unbiased_centred", "diagnostics=true", "diagnostics_every=7"],
    [*MESIMP, "optim.lr_schedule=cosine"],  # the schedule resumes, and joins each cycle's fresh optimizer
])
def test_interrupted_run_resumes_to_identical_result(tmp_path, shared_data, monkeypatch, extra):
    cfg = compose_config("k=20", "data.train_limit=200", "epochs=2", "evals_per_epoch=3",
                         f"data.root={shared_data}", *extra)
    uninterrupted = run(cfg, tmp_path / "whole")

    saves = 0
    real_save = trainer_module.save_checkpoint

    def killed_before_fourth_save(path, data):
        nonlocal saves
        saves += 1
        if saves == 4:  # the 4th chunk trained and evaluated, its checkpoint never written
            raise KeyboardInterrupt
        real_save(path, data)

    monkeypatch.setattr(trainer_module, "save_checkpoint", killed_before_fourth_save)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "cut")
    monkeypatch.undo()
    saved = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    assert 0 < saved["loop"]["step"] < uninterrupted["steps"]
    if "simplify=mesimp" in extra:  # the run is cut after a simplification step: resume must restore the shapes
        assert max(saved["simplify"]["dims"]) < 500 and saved["model"]["hidden.0.weight"].shape[0] < 500
    resumed = run(cfg, tmp_path / "cut")

    assert without_timings(resumed) == without_timings(uninterrupted)
    whole = load_checkpoint(tmp_path / "whole" / CHECKPOINT)["model"]
    for key, value in load_checkpoint(tmp_path / "cut" / CHECKPOINT)["model"].items():
        assert torch.equal(value, whole[key]), key


@pytest.mark.parametrize("extra", [
    [],  # steps in epochs 0 and 2; the later ones leave the widths as they are
    ["simplify.prunes_per_epoch=1", "simplify.k_policy=ratio"],  # the last step, after the last evaluation, shrinks
])
def test_mesimp_scores_belong_to_the_network_the_run_ends_with(tmp_path, shared_data, monkeypatch, extra):
    from mesimp.tasks.mnist.pipeline import MnistTask

    scores = itertools.count()
    # every evaluation scores lower than the one before: the best of the run is its first, before any step
    monkeypatch.setattr(MnistTask, "evaluate", lambda self, split: 100.0 - next(scores))
    cfg = compose_config("k=20", "data.train_limit=200", "evals_per_epoch=3", f"data.root={shared_data}", *MESIMP,
                         *extra)
    metrics = run(cfg, tmp_path / "run")
    final = metrics["dims_history"][-1]["dims"]
    assert max(final) < 500 and metrics["hidden_dims"] == final
    reached = next(entry["step"] for entry in metrics["dims_history"] if entry["dims"] == final)
    # an evaluation at a step's boundary comes before the step: those after `reached` saw the final network
    later = [entry["dev"] for entry in metrics["history"] if entry["step"] > reached]
    if extra:  # no evaluation came after the last step: the final network was evaluated once more, at the end
        last = metrics["history"][-1]
        assert reached == metrics["steps"] == last["step"] == metrics["best_dev_step"] and not later
        assert metrics["best_dev"] == last["dev"]
    else:
        assert later and metrics["best_dev"] == max(later) and metrics["best_dev_step"] > reached


def test_cosine_schedule_ends_the_run_at_a_learning_rate_near_zero(tmp_path, shared_data):
    base = ("k=20", "data.train_limit=200", "epochs=2", "evals_per_epoch=1", f"data.root={shared_data}")
    constant = run(compose_config(*base, "optim.lr_schedule=constant"), tmp_path / "constant")
    cosine = run(compose_config(*base, "optim.lr_schedule=cosine"), tmp_path / "cosine")
    assert (constant["lr_schedule"], cosine["lr_schedule"]) == ("constant", "cosine")
    lr = cosine["lr"]
    steps = cosine["steps"]  # the last update used step steps - 1 of steps: a small fraction of lr, not zero
    groups = load_checkpoint(tmp_path / "cosine" / CHECKPOINT)["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([lr * 0.5 * (1 + math.cos(math.pi * (steps - 1) / steps))])
    groups = load_checkpoint(tmp_path / "constant" / CHECKPOINT)["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [lr]
    assert (cosine["history"][-1]["dev"], cosine["final_test"]) != (constant["history"][-1]["dev"],
                                                                    constant["final_test"])


@pytest.mark.slow
def test_sigkilled_cli_run_resumes_to_identical_metrics(tmp_path, shared_data):
    """A real kill -9 in the middle of training, then the same command again."""
    args = [sys.executable, "-m", "mesimp.train", "k=20", "data.train_limit=2000", "epochs=3", "evals_per_epoch=4"]

    def command(runs):
        return subprocess.Popen(args, env={**os.environ, "MESIMP_RUNS": str(runs), "MESIMP_DATA": str(shared_data)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    assert command(tmp_path / "whole").wait(timeout=600) == 0
    run_dir = "data.train_limit=2000,epochs=3,evals_per_epoch=4,k=20"
    victim = command(tmp_path / "cut")
    checkpoint = tmp_path / "cut" / "mnist" / run_dir / CHECKPOINT
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert command(tmp_path / "cut").wait(timeout=600) == 0

    import json
    whole = json.loads((tmp_path / "whole" / "mnist" / run_dir / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "cut" / "mnist" / run_dir / "metrics.json").read_text())
    assert without_timings(resumed) == without_timings(whole)


@pytest.mark.parametrize("flush", [True, False])
def test_run_sets_the_denormal_mode_it_is_given(tmp_path, shared_data, monkeypatch, flush):
    modes = []
    monkeypatch.setattr("mesimp.runner.flush_denormals", lambda enabled: modes.append(enabled))
    cfg = compose_config("k=20", "data.train_limit=50", "epochs=1", "evals_per_epoch=1", f"data.root={shared_data}",
                         f"flush_denormals={str(flush).lower()}")
    run(cfg, tmp_path / "run")
    assert modes == [flush]
