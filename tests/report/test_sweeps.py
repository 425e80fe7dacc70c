"""Real sweeps on a tiny slice of MNIST: the reproduce command's FAST plumbing end to end (resumable), a failing
job inside a parallel sweep, and the SLURM launcher's local twin."""

import os
import subprocess
import sys

import pytest

from mesimp.report.runs import Status, load_run
from mesimp.report.sweep import make_job
from tests.helpers import assert_one_line_error, train

TINY = ("mnist:data.train_limit=200", "evals_per_epoch=1")


def reproduce(*args, root, data):
    env = {**os.environ, "MESIMP_DATA": str(data)}
    return subprocess.run([sys.executable, "-m", "mesimp.report.reproduce", "--fast", "--root", str(root),
                           "--out", str(root / "report"), *args, *TINY], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow  # 66 s: the reproduction driver end to end, twins and the second pass (make test-all)
def test_fast_grid_plumbing_on_a_slice(tmp_path, shared_data):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    root = tmp_path / "runs"
    only = ("--only", "table3_mnist,readme_b_mnist_mesimp")
    result = reproduce(*only, root=root, data=shared_data)
    assert result.returncode == 0, result.stdout + result.stderr
    readme_b = (root / "report" / "readme_b.md").read_text()
    for label in ("meSimp top-160", "same size, from scratch"):
        line = next(row for row in readme_b.splitlines() if f"| MNIST (minibatch 100) | {label} |" in row)
        assert "| 1/1 |" in line, line
    table3 = (root / "report" / "table3.md").read_text()
    assert "| MNIST (Adam) | MLP (h=20) | MNIST | 1/1 |" in table3
    assert "| MNIST (Adam) | meProp (k=20) | MNIST | 0/1: not run |" in table3  # not in this slice
    assert not (root / "report" / "runs").exists()  # FAST numbers are never published
    # everything is found the second time: nothing runs again
    again = reproduce(*only, root=root, data=shared_data)
    assert again.returncode == 0 and "runs to go" not in again.stdout and "same size as" not in again.stdout
    assert "table3_mnist: all 1 runs finished" in again.stdout


def test_a_failing_job_does_not_stop_a_parallel_sweep(tmp_path, shared_data):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    result = train("-m", "hydra/launcher=local", "k=20,600", "data.train_limit=100", "epochs=1", "evals_per_epoch=1",
                   runs=tmp_path, data=shared_data)
    assert_one_line_error(result, "exceeds the widest meProp layer")  # reported once the others have run
    good = load_run(tmp_path, make_job(["k=20", "data.train_limit=100", "epochs=1", "evals_per_epoch=1"]))
    bad = load_run(tmp_path, make_job(["k=600", "data.train_limit=100", "epochs=1", "evals_per_epoch=1"]))
    assert good.finished
    assert bad.status is Status.failed and "exceeds the widest meProp layer" in bad.reason


def test_slurm_launcher_local_twin(tmp_path, shared_data):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    overrides = ["k=null", "model.hidden=[5]", "data.train_limit=100", "epochs=1", "evals_per_epoch=1"]
    result = train("-m", "hydra/launcher=slurm_local", *overrides, "seed=1,2", runs=tmp_path, data=shared_data)
    assert result.returncode == 0, result.stdout + result.stderr
    for seed in (1, 2):
        assert load_run(tmp_path, make_job([*overrides, f"seed={seed}"])).finished


def test_missing_treebank_stops_before_any_run(tmp_path):
    result = reproduce("--only", "table1_adam_pos", root=tmp_path / "runs", data=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [line for line in lines if line.startswith("error: ")] and "ptb_wsj_sample" in lines[-1]
    assert not (tmp_path / "runs" / "pos").exists()
