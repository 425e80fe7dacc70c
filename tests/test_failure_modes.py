"""The real command line when things go wrong (README "Failure modes and guarantees"): one `error:` line and exit 2,
or a logged recovery; never a traceback, a lost result, or another run's result handed back."""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import assert_one_line_error, train

FAST = ["k=5", "model.hidden=[20]", "data.train_limit=100", "epochs=1", "evals_per_epoch=1", "batch_size=50"]
RUN = "batch_size=50,data.train_limit=100,epochs=1,evals_per_epoch=1,k=5,model.hidden=[20]"


def files(root: Path) -> dict[str, bytes]:
    """Every file's content, the lock's holder pid aside."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != ".lock"}


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory, shared_data) -> Path:
    runs = tmp_path_factory.mktemp("finished") / "runs"
    result = train(*FAST, runs=runs, data=shared_data)
    assert result.returncode == 0, result.stderr
    return runs


@pytest.fixture
def finished(finished_once, tmp_path) -> Path:
    """A runs directory (tmp_path/runs) holding one finished MNIST run; returns the run's directory."""
    shutil.copytree(finished_once, tmp_path / "runs")
    return tmp_path / "runs" / "mnist" / RUN


def test_a_finished_run_records_what_it_was(finished, shared_data):
    identity = json.loads((finished / "identity.json").read_text())
    assert identity["config"]["k"] == 5 and "root" not in identity["config"]["data"]
    assert [Path(entry["file"]).name for entry in identity["data"]][0].startswith("train-images")
    metrics = json.loads((finished / "metrics.json").read_text())
    assert metrics["data"] == identity["data"] and metrics["data_name"] == "mnist"
    assert "k=5" in (finished / ".hydra" / "overrides.yaml").read_text()
    assert "hidden:\n  - 20" in (finished / ".hydra" / "config.yaml").read_text()


def test_restart_that_fails_to_start_keeps_the_finished_run(finished, tmp_path):
    before = files(finished)
    result = train(*FAST, "resume=false", "data.fetch=false", f"data.root={tmp_path / 'nothing'}",
                   runs=tmp_path / "runs")
    assert_one_line_error(result, "MNIST not found")
    after = files(finished)
    assert {name: after[name] for name in before if name != "train.log"} == {
        name: data for name, data in before.items() if name != "train.log"}


def test_the_same_command_on_other_data_is_refused(finished, tmp_path, shared_data):
    other = tmp_path / "other"
    (other / "mnist").mkdir(parents=True)
    for path in (shared_data / "mnist").iterdir():  # the same images, stored uncompressed: other files
        if path.name.endswith(".gz"):
            subprocess.run(f"gunzip -c {path} > {other / 'mnist' / path.name[:-3]}", shell=True, check=True)
    before = files(finished)
    result = train(*FAST, runs=tmp_path / "runs", data=other)
    assert_one_line_error(result, "holds a run trained on other data")
    assert files(finished) == before


def test_a_second_process_is_refused_naming_the_first(finished, tmp_path, shared_data):
    fd = os.open(finished / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, b"4242\n", 0)
    try:
        before = files(finished)
        result = train(*FAST, runs=tmp_path / "runs", data=shared_data)
        assert_one_line_error(result, "is in use by another run (pid 4242)")
        assert files(finished) == before
    finally:
        os.close(fd)


def test_leftovers_unreadable_checkpoint_and_unusable_metrics_are_recovered(finished, tmp_path, shared_data):
    (finished / ".checkpoint.pt.k3j4.tmp").write_bytes(b"killed mid-write")
    (finished / "checkpoint.pt").write_bytes(b"not a checkpoint")
    (finished / "metrics.json").write_text("[]")
    result = train(*FAST, runs=tmp_path / "runs", data=shared_data)
    assert result.returncode == 0, result.stderr
    console = result.stdout + result.stderr  # Hydra logs to stdout
    assert "Traceback" not in console
    assert "moved to metrics.json.invalid" in console and "moved to checkpoint.pt.unreadable" in console
    assert (finished / "checkpoint.pt.unreadable").read_bytes() == b"not a checkpoint"
    assert json.loads((finished / "metrics.json").read_text())["epochs_run"] == 1
    assert not list(finished.glob(".*.tmp"))


def test_a_checkpoint_of_another_model_is_one_line(finished, tmp_path, shared_data):
    (finished / "metrics.json").unlink()
    (finished / "identity.json").unlink()  # as a run from before identities were recorded
    data = torch.load(finished / "checkpoint.pt", weights_only=True)
    data["model"] = {"unexpected": torch.zeros(3)}
    torch.save(data, finished / "checkpoint.pt")
    result = train(*FAST, runs=tmp_path / "runs", data=shared_data)
    assert_one_line_error(result, "checkpoint.pt does not fit this run's model")


def test_an_unwritable_output_directory_is_one_line(tmp_path, shared_data):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = train(*FAST, runs=blocker / "runs", data=shared_data)
    assert_one_line_error(result, "Not a directory")


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, shared_data):
    """RLIMIT_FSIZE stands in for a full disk: a write past it fails (EFBIG) as one past the free space does."""
    limited = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000)); sys.argv[0] = 'mesimp.train'; "
               "runpy.run_module('mesimp.train', run_name='__main__')")
    env = {**os.environ, "MESIMP_RUNS": str(tmp_path / "runs"), "MESIMP_DATA": str(shared_data)}
    result = subprocess.run([sys.executable, "-c", limited, *FAST], env=env, capture_output=True, text=True,
                            timeout=300)
    assert_one_line_error(result, "checkpoint.pt")
    assert "File too large" in result.stderr
    run_dir = tmp_path / "runs" / "mnist" / RUN
    assert not (run_dir / "checkpoint.pt").exists() and not list(run_dir.glob(".*.tmp"))
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.parametrize("overrides,fragment", [
    (["optim.lr=-0.1"], "optim.lr must be > 0"),
    (["optim.betas=[0.9,1.0]"], "optim.betas must be two numbers in [0, 1)"),
    (["optim.eps=0"], "optim.eps must be > 0"),
    (["threads=0"], "threads must be >= 1"),
    (["k=20", "model.hidden=[]"], "meProp has no layer to act on"),
    (["k=501"], "k=501 exceeds the widest meProp layer (500)"),
    (["task=pos", "k=501"], "k=501 exceeds the widest meProp layer (500) (meprop.gates=per_gate keeps k in each"),
    (["task=pos", "meprop.gates=joint", "k=2001"], "k=2001 exceeds the widest meProp layer (2000)"),
    (["task=mnist", "k=20", "meprop.input_grad=dense"], "meprop.input_grad=dense is for the tagger's LSTM (task=pos)"),
])
def test_senseless_settings_are_refused_before_any_data_loads(tmp_path, overrides, fragment):
    result = train(*overrides, "data.fetch=false", runs=tmp_path / "runs", data=tmp_path / "no_data_here")
    assert_one_line_error(result, fragment)


@pytest.mark.parametrize("override,fragment", [
    ("optim.lerning_rate=0.1", "Key 'lerning_rate' not in 'OptimConfig'"),
    ("k=[1", "bad override syntax"),
    ("k=abc", "Value 'abc' of type 'str' could not be converted to Integer"),
])
def test_hydra_errors_are_one_line(tmp_path, override, fragment):
    result = train(override, runs=tmp_path)
    assert_one_line_error(result, fragment)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_hydra_full_error_still_shows_everything(tmp_path):
    env = {**os.environ, "MESIMP_RUNS": str(tmp_path), "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run([sys.executable, "-m", "mesimp.train", "optim.lerning_rate=0.1"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_a_sweep_jobs_user_error_is_one_line(tmp_path, shared_data):
    result = train("-m", *FAST[1:], "k=5,-1", runs=tmp_path, data=shared_data)
    assert_one_line_error(result, "k must be >= 0 or null, got -1")
    assert (tmp_path / "mnist" / RUN / "metrics.json").exists()  # the sweep's good job ran


def test_paths_that_meet_in_one_directory_name_are_refused(tmp_path):
    """data.train=X/a/b.conllu and data.train=X/a_b.conllu both name the directory data.train=X_a_b.conllu."""
    sentence = "1\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_\n2\tbark\tbark\tVERB\tVBP\t_\t0\troot\t_\t_\n\n"
    nested, flat = tmp_path / "a" / "b.conllu", tmp_path / "a_b.conllu"
    nested.parent.mkdir()
    nested.write_text(sentence)
    flat.write_text(sentence.replace("Dogs", "Cats"))
    tiny = ["task=parse", "data.name=null", f"data.dev={nested}", f"data.test={nested}", "epochs=1", "batch_size=4",
            "model.hidden=[8]", "model.embedding_dim=4"]
    first = train(*tiny, f"data.train={nested}", runs=tmp_path / "runs")
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs" / "parse").iterdir()
    before = files(run_dir)
    second = train(*tiny, f"data.train={flat}", runs=tmp_path / "runs")
    assert_one_line_error(second, f"holds a run with data.train={nested}, not {flat}")
    assert files(run_dir) == before


def test_ctrl_c_is_one_line_and_the_run_resumes(tmp_path, shared_data):
    env = {**os.environ, "MESIMP_RUNS": str(tmp_path), "MESIMP_DATA": str(shared_data)}
    args = [sys.executable, "-m", "mesimp.train", "k=5", "model.hidden=[20]", "data.train_limit=2000", "epochs=30",
            "evals_per_epoch=1", "batch_size=50"]
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "mnist" / "batch_size=50,data.train_limit=2000,epochs=30,evals_per_epoch=1,k=5,model.hidden=[20]"
    while not (run_dir / "checkpoint.pt").exists() and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted; the same command resumes from the last checkpoint"
    assert (run_dir / "checkpoint.pt").exists() and not list(run_dir.glob(".*.tmp"))
