"""device=auto|cpu|cuda on a machine without a GPU: cpu trains, auto is the CPU (and the same run), cuda is one error
line; a checkpoint whose random-draw state is another device's resumes. scripts/gpu_check.sh checks the GPU path."""

import json
import logging

import pytest
import torch

from mesimp.engine import trainer as trainer_module
from mesimp.engine.io import load_checkpoint, save_checkpoint
from mesimp.engine.trainer import CHECKPOINT
from mesimp.runner import run
from tests.helpers import assert_one_line_error, compose_config, train

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
TINY = ["k=4", "model.hidden=[16]", "data.train_limit=200", "epochs=1", "evals_per_epoch=1", "threads=1"]


@no_gpu
def test_cpu_trains_and_auto_is_the_same_run_on_the_cpu(tmp_path, shared_data):
    result = train(*TINY, "device=cpu", runs=tmp_path, data=shared_data)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "mnist" / "data.train_limit=200,epochs=1,evals_per_epoch=1,k=4,model.hidden=[16]"
    assert json.loads((run_dir / "metrics.json").read_text())["device"] == "cpu"
    output = result.stdout + result.stderr
    assert "20 updates per epoch" in output and ", on cpu" in output
    assert "only 20 updates per epoch (batch_size=10, 200 training examples): on a small data set lower batch_size " \
           "(e.g. to 1)" in output
    again = train(*TINY, "device=auto", runs=tmp_path, data=shared_data)  # the device names neither run nor directory
    assert again.returncode == 0 and "run already complete" in again.stdout + again.stderr


@no_gpu
def test_cuda_without_a_gpu_is_one_line(tmp_path, shared_data):
    result = train(*TINY, "device=cuda", runs=tmp_path, data=shared_data)
    assert_one_line_error(result, "device=cuda, but torch")
    assert "sees no CUDA GPU: use device=cpu or device=auto" in result.stderr


def test_another_devices_random_draw_state_restarts_the_draws(tmp_path, shared_data, monkeypatch, caplog):
    """A CUDA generator's state (16 bytes) does not fit the CPU's: the sampled rule's draws go on from a new seed."""
    cfg = compose_config(*TINY, "evals_per_epoch=2", "meprop.rule=unbiased", f"data.root={shared_data}")

    def interrupted(path, data):
        save_checkpoint(path, data)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "save_checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path)
    monkeypatch.undo()
    saved = load_checkpoint(tmp_path / CHECKPOINT)
    saved["generators"]["meprop"] = torch.zeros(16, dtype=torch.uint8)
    save_checkpoint(tmp_path / CHECKPOINT, saved)
    with caplog.at_level(logging.INFO):
        metrics = run(cfg, tmp_path)
    assert "the meprop random draws restart from a new seed: checkpoint.pt was written on another device" in caplog.text
    assert metrics["epochs_run"] == 1 and metrics["steps"] == 20
