"""mesimp.export: a trained MLP (meProp layers, meSimp-shrunk widths) round-trips into plain torch exactly."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import mesimp.export
from mesimp.errors import UserError
from mesimp.export import FORMAT, build_plain_mlp, export_mlp, load_exported
from mesimp.nn import convert_to_meprop
from mesimp.nn.mlp import MLP

REPO = Path(__file__).resolve().parents[1]


def shrunk_mlp() -> MLP:
    """MLP(20, [7, 5], 3) whose first hidden layer meSimp cut to an odd width of 4."""
    torch.manual_seed(0)
    model = MLP(20, [7, 5], 3, dropout=0.3)
    model.hidden[0] = nn.Linear(20, 4)
    model.hidden[1] = nn.Linear(4, 5)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model


def save_run(run_dir: Path, state: dict, task: str | None = "mnist") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "epoch": 3}, run_dir / "checkpoint.pt")
    if task:
        (run_dir / "metrics.json").write_text(json.dumps({"task": task}))
    return run_dir


def docstring_snippet(path: Path) -> nn.Module:
    """Run the module docstring's plain-torch snippet as written, on ``path``, in a namespace without mesimp."""
    block = mesimp.export.__doc__.split("::\n", 1)[1]
    lines = [line[4:] for line in block.splitlines() if line.startswith("    ")]
    assert len(lines) == 6
    namespace: dict = {}
    exec("\n".join(lines).replace('"model.pt"', repr(str(path))), namespace)
    assert not any(getattr(v, "__module__", "").startswith("mesimp") for v in namespace.values())
    return namespace["model"]


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mesimp.export", *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=120
    )


@pytest.mark.parametrize("meprop", [False, True], ids=["linear", "meprop"])
def test_export_round_trips_exactly(tmp_path, meprop):
    model = shrunk_mlp()
    if meprop:
        convert_to_meprop(model, k=2)
        assert type(model.hidden[0]).__name__ == "MePropLinear"
    run_dir = save_run(tmp_path / "run", model.state_dict())
    out = tmp_path / "export" / "model.pt"

    config = export_mlp(run_dir, out)

    assert config == {"in_features": 20, "hidden": [4, 5], "out_features": 3, "activation": "relu", "task": "mnist"}
    data = torch.load(out, weights_only=True)
    assert data["format"] == FORMAT and data["config"] == config
    assert list(data["state_dict"]) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    for tensor in data["state_dict"].values():
        assert type(tensor) is torch.Tensor and tensor.is_contiguous() and tensor.device.type == "cpu"

    x = torch.randn(64, 20)
    with torch.no_grad():
        expected = model.eval()(x)
        for loaded in (load_exported(out), docstring_snippet(out)):
            assert not loaded.training
            assert all(type(m).__module__.startswith("torch.nn") for m in loaded.modules())
            assert torch.equal(loaded(x), expected)


def test_export_without_metrics_json(tmp_path):
    model = shrunk_mlp()
    run_dir = save_run(tmp_path / "run", model.state_dict(), task=None)
    config = export_mlp(run_dir, tmp_path / "model.pt")
    assert config["task"] is None
    state = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert torch.equal(state["0.weight"], model.hidden[0].weight)
    assert build_plain_mlp(config)[0].weight.shape == (4, 20)


def test_cli_success(tmp_path):
    run_dir = save_run(tmp_path / "run", shrunk_mlp().state_dict())
    out = tmp_path / "model.pt"
    result = run_cli(run_dir, out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "20-4-5-3" in lines[0] and f"{(21 * 4) + (5 * 5) + (6 * 3):,}" in lines[0]
    assert out.is_file()


def assert_one_error_line(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_cli_missing_checkpoint(tmp_path):
    result = run_cli(tmp_path / "nowhere", tmp_path / "model.pt")
    assert_one_error_line(result)
    assert "checkpoint" in result.stderr
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: {k: v for k, v in s.items() if k != "output.weight"},
        lambda s: {re.sub(r"^hidden\.1\.", "hidden.2.", k): v for k, v in s.items()},
        lambda s: {**s, "hidden.1.weight": torch.zeros(5, 9)},
    ],
    ids=["no-output-weight", "non-consecutive-hidden", "shape-mismatch"],
)
def test_cli_rejects_non_mlp_checkpoints(tmp_path, mangle):
    run_dir = save_run(tmp_path / "run", mangle(shrunk_mlp().state_dict()))
    assert_one_error_line(run_cli(run_dir, tmp_path / "model.pt"))
    assert not (tmp_path / "model.pt").exists()


def test_cli_unreadable_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(os.urandom(64))
    assert_one_error_line(run_cli(run_dir, tmp_path / "model.pt"))


def test_load_exported_rejects_other_files(tmp_path):
    torch.save({"model": shrunk_mlp().state_dict()}, tmp_path / "checkpoint.pt")
    with pytest.raises(UserError, match=FORMAT):
        load_exported(tmp_path / "checkpoint.pt")
