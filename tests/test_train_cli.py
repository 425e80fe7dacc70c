"""The real command line: bad input gives one error line and exit 2; a short real run writes metrics.json."""

import json
import subprocess
import sys

import pytest

from mesimp.data.idx import write_idx
from mesimp.data.mnist import NAMES, locate_mnist, read_idx
from tests.helpers import assert_one_line_error, train

REQUIRED_METRICS = {"task", "method", "k", "seed", "best_dev", "test_at_best_dev", "epochs_run", "backprop_time_s",
                    "train_time_s", "update_ratio", "hidden_dims", "num_params"}


@pytest.mark.parametrize("overrides,fragment", [
    (["task=imagenet"], "unknown task 'imagenet'"),
    (["k=-3"], "k must be >= 0"),
    (["k_ratio=1.5"], "k_ratio must be in (0, 1]"),
    (["k=20", "k_ratio=0.5"], "not both"),
    (["k=501"], "exceeds the widest meProp layer"),
])
def test_bad_input_is_one_line(tmp_path, shared_data, overrides, fragment):
    assert_one_line_error(train(*overrides, runs=tmp_path, data=shared_data), fragment)


def test_missing_data_is_one_line(tmp_path):
    result = train("k=20", "data.fetch=false", f"data.root={tmp_path / 'empty'}", runs=tmp_path)
    assert_one_line_error(result, "MNIST not found")


def test_corrupt_data_names_the_file(tmp_path, shared_data):
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    for name, path in locate_mnist(shared_data).items():
        tensor = read_idx(path)
        if name == NAMES[1]:
            tensor = tensor.clone()
            tensor[0] = (int(tensor[0]) + 1) % 10  # one wrong label
        write_idx(root / "mnist" / f"{name}.gz", tensor)
    result = train("data.fetch=false", runs=tmp_path, data=root)
    assert_one_line_error(result, NAMES[1])
    assert "md5" in result.stderr


def test_short_real_run_writes_metrics(tmp_path, shared_data):
    result = train("k=20", "data.train_limit=300", "epochs=2", "evals_per_epoch=2", runs=tmp_path, data=shared_data)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "mnist" / "data.train_limit=300,epochs=2,evals_per_epoch=2,k=20"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert REQUIRED_METRICS <= set(metrics)
    assert metrics["task"] == "mnist" and metrics["method"] == "meprop" and metrics["k"] == 20
    assert metrics["epochs_run"] == 2 and metrics["steps"] == 2 * 30
    assert metrics["update_ratio"] == pytest.approx(20 / 500)
    assert 10.0 < metrics["best_dev"] <= 100.0 and 10.0 < metrics["test_at_best_dev"] <= 100.0
    assert metrics["hidden_dims"] == [500, 500] and metrics["num_params"] == 784 * 500 + 500 * 500 + 5010 + 500 * 2
    assert 0 < metrics["backprop_time_s"] < metrics["train_time_s"]
    assert (run_dir / ".hydra" / "config.yaml").exists() and (run_dir / "checkpoint.pt").exists()
    assert any((run_dir / "tb").glob("events.out.tfevents.*"))
    again = train("k=20", "data.train_limit=300", "epochs=2", "evals_per_epoch=2", runs=tmp_path, data=shared_data)
    assert again.returncode == 0 and "already complete" in again.stderr + again.stdout
    # a finished run from before identities were recorded (no identity.json) of another rule or rate is refused,
    # not returned: one that records another rule, one from before meprop.rule (it records none: topk, while
    # MNIST's default is now unbiased_centred), one from before optim.lr_schedule (constant; MNIST's is cosine), one
    # at another rate (a task's default rate changed)
    assert (metrics["rule"], metrics["lr_schedule"]) == ("unbiased_centred", "cosine")
    (run_dir / "identity.json").unlink()
    for key, recorded, expected in (("rule", "centred", "meprop.rule=centred, not unbiased_centred"),
                                    ("rule", None, "meprop.rule=topk, not unbiased_centred"),
                                    ("lr_schedule", None, "optim.lr_schedule=constant, not cosine"),
                                    ("lr", 0.002, "optim.lr=0.002, not 0.001")):
        stale_metrics = {name: value for name, value in metrics.items() if name != key}
        if recorded:
            stale_metrics[key] = recorded
        (run_dir / "metrics.json").write_text(json.dumps(stale_metrics))
        before = (run_dir / "metrics.json").read_text()
        stale = train("k=20", "data.train_limit=300", "epochs=2", "evals_per_epoch=2", runs=tmp_path,
                      data=shared_data)
        assert_one_line_error(stale, expected)
        assert (run_dir / "metrics.json").read_text() == before


def test_tensorboard_has_the_reported_scalars(tmp_path, shared_data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert train("k=20", "data.train_limit=100", "epochs=1", "evals_per_epoch=1", runs=tmp_path,
                 data=shared_data).returncode == 0
    run_dir = tmp_path / "mnist" / "data.train_limit=100,epochs=1,evals_per_epoch=1,k=20"
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "dev/accuracy", "meprop/update_ratio", "model/num_params", "model/hidden_dim_0",
            "time/forward_s", "time/backward_s", "time/linear_backward_s"} <= tags
    assert events.Scalars("meprop/update_ratio")[0].value == pytest.approx(0.04)
    assert any((run_dir / "tb" / "hparams").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("overrides,fragment", [
    (["k=20", "simplify=mesimp", "simplify.prune_rate=1.0"], "prune_rate must be in [0, 1)"),
    (["k=20", "simplify=mesimp", "simplify.prune_rate=-0.1"], "prune_rate must be in [0, 1)"),
    (["k=20", "simplify=mesimp", "simplify.cycle_epochs=0"], "cycle_epochs"),
    (["k=20", "simplify=mesimp", "simplify.warmup_epochs=-1"], "warmup_epochs"),
    (["simplify=mesimp"], "needs meProp's top-k"),
])
def test_bad_simplify_input_is_one_line(tmp_path, shared_data, overrides, fragment):
    assert_one_line_error(train(*overrides, runs=tmp_path, data=shared_data), fragment)


def test_mesimp_run_shrinks_exports_and_round_trips(tmp_path, shared_data):
    import torch

    from mesimp.data.mnist import load_mnist
    from mesimp.export import load_exported

    overrides = ["k=20", "simplify=mesimp", "simplify.cycle_epochs=1", "data.train_limit=1000", "epochs=2",
                 "batch_size=50"]
    assert train(*overrides, runs=tmp_path, data=shared_data).returncode == 0
    run_dir = tmp_path / "mnist" / "batch_size=50,data.train_limit=1000,epochs=2,k=20,simplify.cycle_epochs=1,simplify=mesimp"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["method"] == "mesimp"
    dims = metrics["hidden_dims"]
    assert max(dims) < 500 and metrics["dims_history"][-1]["dims"] == dims
    assert len(metrics["dims_history"]) == 8  # epoch 0 simplifies (8 steps), epoch 1 is a normal cycle
    expected_params = 784 * dims[0] + dims[0] + dims[0] * dims[1] + dims[1] + dims[1] * 10 + 10
    assert metrics["num_params"] == expected_params
    assert metrics["compression"] == pytest.approx(metrics["original_num_params"] / expected_params)
    assert set(metrics["decode_time_s"]) == {"final", "original_width"}

    out = tmp_path / "compact.pt"
    exported = subprocess.run([sys.executable, "-m", "mesimp.export", str(run_dir), str(out)], capture_output=True,
                              text=True)
    assert exported.returncode == 0, exported.stderr
    model = load_exported(out)
    test = load_mnist(shared_data, fetch=False)
    with torch.no_grad():
        accuracy = 100.0 * (model(test.test_x).argmax(1) == test.test_y).sum().item() / len(test.test_y)
    assert accuracy == metrics["final_test"]


def test_run_names_stay_flat_and_short():
    from mesimp.train import MAX_RUN_NAME, run_name

    assert run_name("") == "default" and run_name("k=20") == "k=20"
    assert run_name("data.train=/a/b/*.conllu") == "data.train=_a_b_+.conllu"
    long = run_name("data.train=" + "/x" * 300)
    assert len(long) <= MAX_RUN_NAME and "/" not in long and long != run_name("data.train=" + "/y" * 300)
