"""mesimp.export: a trained MLP (meProp layers, meSimp-shrunk widths) round-trips into plain torch exactly."""

import json
import os
import re
import subprocess
import sys
from itertools import takewhile
from pathlib import Path

import pytest
import torch
from torch import nn

import mesimp.export
from mesimp.errors import UserError
from mesimp.export import FORMAT, build_plain_mlp, export_run, load_exported
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
    block = mesimp.export.__doc__.split("::\n", 1)[1].splitlines()
    lines = [line[4:] for line in takewhile(lambda line: line.startswith("    ") or not line, block) if line]
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

    config = export_run(run_dir, out)["config"]

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
    config = export_run(run_dir, tmp_path / "model.pt")["config"]
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


# ---- parser and tagger runs: weights plus the vocabularies rebuilt from the run's training data ----------------

TREEBANK = """# sent_id = 1
# text = The dog barks.
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tdog\tdog\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tbarks\tbark\tVERB\tVBZ\t_\t0\troot\t_\tSpaceAfter=No
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

1\tthe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\t_\t3\tnsubj:pass\t_\t_
3\tsleeps\tsleep\tVERB\tVBZ\t_\t0\troot\t_\t_
"""

TREEBANK_CASES = {  # task: (overrides, the hidden widths meSimp leaves)
    "parse": (["model.hidden=[7,5]", "model.embedding_dim=6"], [4, 5]),
    "pos": (["model.hidden=[6]", "model.bidirectional=true", "model.embedding_dim=5", "model.feature_dim=3"], [6, 4]),
}


def treebank_run(tmp_path: Path, task: str):
    """A run directory as training leaves it (config, identity, checkpoint) for a model meSimp has shrunk, without
    training: the built task and the run directory."""
    import importlib

    from mesimp.engine import rundir
    from mesimp.simplify.units import compact_group
    from tests.helpers import compose_config

    data = tmp_path / "tiny.conllu"
    data.write_text(TREEBANK)
    overrides, widths = TREEBANK_CASES[task]
    splits = (f"data.{split}={data}" for split in ("train", "dev", "test"))
    cfg = compose_config(f"task={task}", "data.name=null", *splits, *overrides)
    module = importlib.import_module(f"mesimp.tasks.{task}")
    built = module.build(cfg)
    for group, width in zip(built.unit_groups(), widths):
        compact_group(group, torch.arange(width))
    run_dir = tmp_path / "run"
    rundir.record(run_dir, cfg, [], rundir.identity(cfg, module.data_files(cfg)))
    torch.save({"model": built.task.model.state_dict()}, run_dir / "checkpoint.pt")
    return built.task, run_dir


def scores(task, model: nn.Module) -> torch.Tensor:
    """The model's outputs on the task's training examples."""
    model.eval()
    with torch.no_grad():
        if hasattr(task, "features"):  # the parser: oracle configurations
            return model(task.features)
        words, features, _, lengths = task.train.batch(torch.arange(len(task.train)))
        return model(words, features, lengths)


def assert_plain(value) -> None:
    """Only what torch.load(weights_only=True) reads without help, and no tensor sharing a larger storage."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            assert_plain(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain(item)
    elif isinstance(value, torch.Tensor):
        assert type(value) is torch.Tensor and value.untyped_storage().nbytes() == value.numel() * value.element_size()
    else:
        assert value is None or type(value) in (str, int, float, bool), type(value)


@pytest.mark.parametrize("task", TREEBANK_CASES)
def test_treebank_export_round_trips_with_compact_widths(tmp_path, task):
    from mesimp.export import treebank_model

    trained, run_dir = treebank_run(tmp_path, task)
    out = tmp_path / "model.pt"
    result = run_cli(run_dir, out)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout and len(result.stdout.strip().splitlines()) == 1

    data = torch.load(out, weights_only=True)
    assert_plain(data)
    assert data["format"] == {"parse": "mesimp-parser-v1", "pos": "mesimp-tagger-v1"}[task]
    config, vocab = data["config"], data["vocab"]
    assert config["task"] == task and config["lowercase"] is True and config["tagset"] == "xpos"
    assert config["hidden"] == TREEBANK_CASES[task][1]
    assert "the" in vocab["words"] and "dog" not in vocab["words"]  # lowercased; seen once: the unknown word
    assert vocab["tags"][-4:] == [".", "DT", "NN", "VBZ"]
    if task == "parse":
        assert config["embedding_dim"] == 6 and config["label_subtypes"] is False
        assert vocab["labels"] == ["det", "nsubj", "punct", "root", "<null>"]
        assert vocab["words"] == trained.vocabs.words.itos
    else:
        assert (config["word_dim"], config["feature_dim"], config["bidirectional"]) == (5, 3, True)
        assert list(vocab["features"]) == ["case", "prefix2", "prefix3", "suffix2", "suffix3", "digits", "symbols"]
        assert vocab["features"]["suffix3"] == ["<null>", "<unk>", *sorted({"the", "dog", "rks", ".", "cat", "eps"})]
    rebuilt = treebank_model(data, out)
    assert torch.equal(scores(trained, rebuilt.task.model), scores(trained, trained.model))


def test_treebank_export_refuses_other_training_data(tmp_path):
    _, run_dir = treebank_run(tmp_path, "pos")
    identity = json.loads((run_dir / "identity.json").read_text())
    identity["data"][0]["sha256"] = "0" * 64
    (run_dir / "identity.json").write_text(json.dumps(identity))
    result = run_cli(run_dir, tmp_path / "model.pt")
    assert_one_error_line(result)
    assert "is not the training file" in result.stderr and "tiny.conllu" in result.stderr
    assert not (tmp_path / "model.pt").exists()


def test_treebank_export_refuses_vocabularies_that_do_not_fit(tmp_path):
    # a config edited after training (rarer words kept) rebuilds a larger vocabulary than the weights were made for
    _, run_dir = treebank_run(tmp_path, "parse")
    config = run_dir / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("word_min_count: 2", "word_min_count: 1"))
    result = run_cli(run_dir, tmp_path / "model.pt")
    assert_one_error_line(result)
    assert "weights do not fit" in result.stderr and "words.weight" in result.stderr


def test_treebank_export_needs_the_run_config_and_checks_data_when_it_can(tmp_path):
    _, run_dir = treebank_run(tmp_path, "parse")
    (run_dir / "identity.json").unlink()  # a run from before identities: exported, with a warning
    result = run_cli(run_dir, tmp_path / "model.pt")
    assert result.returncode == 0 and "cannot be checked" in result.stderr
    (run_dir / ".hydra" / "config.yaml").unlink()
    (run_dir / "metrics.json").write_text(json.dumps({"task": "parse"}))
    result = run_cli(run_dir, tmp_path / "again.pt")
    assert_one_error_line(result)
    assert "config.yaml" in result.stderr
