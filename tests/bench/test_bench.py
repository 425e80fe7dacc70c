"""The benchmark suite runs end to end on small shapes (timings are not asserted: they are measurements)."""

import json

import pytest
import torch

from mesimp.bench.__main__ import main


def test_layer_lstm_and_memory_groups(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["--quick", "--groups", "layer,mlp,lstm,memory", "--repeats", "2", "--json", str(out)])
    report = json.loads(out.read_text())
    groups = {r["group"] for r in report["results"]}
    assert groups == {"layer", "mlp", "lstm", "memory"} and report["device"] == "cpu"
    assert report["finished_at"] and "code_version" in report
    assert report["cpu"] and report["kernel_vector_paths"] in {"avx512", "avx2", "portable", "none"}
    layer = [r for r in report["results"] if r["group"] == "layer"]
    assert {(r["scope"], r["select"]) for r in layer} == {("example", "topk"), ("batch", "topk"),
                                                         ("example", "random"), ("batch", "random")}
    assert all(r["dense_ms"] > 0 and r["meprop_ms"] > 0 and r["ratio"] > 0 for r in layer)
    memory = {(r["k"], r["scope"]): r["peak_growth_bytes"] for r in report["results"] if r["group"] == "memory"}
    assert memory[(64, "batch")] < memory[(None, "example")]  # the unified backward builds no dense dL/dW
    lstm = [r for r in report["results"] if r["group"] == "lstm"]
    assert {(r["scope"], r["gates"], r["input_grad"]) for r in lstm} == {
        ("example", "joint", "topk"), ("batch", "joint", "topk"), ("example", "per_gate", "topk"),
        ("example", "per_gate", "dense")}
    assert all(r["ideal"] == 2000 / r["k"] / (4 if r["gates"] == "per_gate" else 1) for r in lstm)
    printed = capsys.readouterr().out
    assert "| mnist-b100 |" in printed and "| topk, per gate |" in printed and "| topk, per gate, dense dL/dx |" in printed


def test_epochs_report_equal_losses_with_and_without_kernels(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("MESIMP_DATA", str(shared_data))
    out = tmp_path / "bench.json"
    main(["--quick", "--groups", "epoch", "--json", str(out)])
    epochs = json.loads(out.read_text())["results"]
    assert {r["task"] for r in epochs} == {"mnist", "parse", "pos"}
    for r in epochs:
        assert r["steps"] >= 1 and r["dense_s"] > 0 and r["meprop_s"] > 0
        assert r["meprop_loss"] == pytest.approx(r["meprop_pytorch_loss"], rel=1e-4)


def test_unknown_group_is_a_one_line_error():
    with pytest.raises(SystemExit, match="unknown benchmark group"):
        main(["--groups", "layer,speed"])


def test_cases_select_layer_shapes(capsys):
    main(["--quick", "--groups", "layer", "--cases", "small-parse", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "| small-parse |" in out and "| mnist-b100 |" not in out


def test_unknown_case_is_a_one_line_error():
    with pytest.raises(SystemExit, match="unknown layer case"):
        main(["--groups", "layer", "--cases", "mnist-b100,resnet"])


def test_missing_data_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MESIMP_DATA", str(tmp_path))
    with pytest.raises(SystemExit, match="error: .*missing file"):
        main(["--groups", "epoch", "--quick"])


@pytest.mark.slow  # two benchmark epochs of MNIST: 45 s
def test_repeated_epochs_start_from_the_same_state(shared_data, monkeypatch):
    from mesimp.bench.tasks import bench_epoch

    monkeypatch.setenv("MESIMP_DATA", str(shared_data))
    once = bench_epoch("mnist", torch.device("cpu"), max_steps=3, train_limit=200, repeats=1)
    twice = bench_epoch("mnist", torch.device("cpu"), max_steps=3, train_limit=200, repeats=2)
    assert (twice.dense_loss, twice.meprop_loss) == (once.dense_loss, once.meprop_loss)
    assert twice.ratio == pytest.approx(twice.dense_s / twice.meprop_s)
