"""Gradient diagnostics: the figures each layer reports, and the loop's record of them."""

import pytest
import torch
from torch import nn

from mesimp.engine.diagnostics import FIGURES, GradientDiagnostics
from mesimp.nn import MePropLinear
from mesimp.nn.lstm import MePropLSTM
from mesimp.runner import run
from tests.helpers import compose_config


def diagnosed(layer, *inputs):
    model = nn.ModuleDict({"layer": layer})
    history = {}
    diagnostics = GradientDiagnostics(model, {"layer"}, history)
    diagnostics.arm(True)
    out = layer(*inputs)
    torch.manual_seed(9)
    (out * torch.randn_like(out)).sum().backward()
    figures = diagnostics.collect(step=3)["layer"]
    diagnostics.close()
    assert history["layer"]["step"] == [3] and set(history["layer"]) == {"step", *FIGURES}
    assert not layer.diagnose  # disarmed after one backward
    return figures


def test_linear_figures_against_their_definitions():
    torch.manual_seed(0)
    x = torch.randn(32, 8, dtype=torch.float64) + 3.0
    layer = MePropLinear(8, 12, k=3, dtype=torch.float64)
    figures = diagnosed(layer, x)
    share = 32 * x.mean(0).square().sum() / x.square().sum()
    assert figures["input_mean_share"] == pytest.approx(float(share))
    assert figures["dead_fraction"] == 0.0
    assert 0.0 < figures["cosine"] < 0.999  # top-k's gradient is not the exact one
    layer.rule = "dense_dw"
    assert diagnosed(layer, x)["cosine"] == pytest.approx(1.0)


def test_dead_units_are_those_with_no_gradient_in_the_minibatch():
    torch.manual_seed(1)
    layer = MePropLinear(4, 10, k=2, dtype=torch.float64)
    with torch.no_grad():
        layer.bias[:4] = -100.0  # four units that no ReLU lets through
    model = nn.Sequential(layer, nn.ReLU())
    x = torch.randn(16, 4, dtype=torch.float64)
    history = {}
    diagnostics = GradientDiagnostics(nn.ModuleDict({"layer": layer}), {"layer"}, history)
    diagnostics.arm(True)
    model(x).sum().backward()
    assert diagnostics.collect(0)["layer"]["dead_fraction"] == pytest.approx(0.4)


def test_lstm_figures_cover_both_weight_matrices():
    torch.manual_seed(2)
    layer = MePropLSTM(5, 4, k=16).double()
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    assert diagnosed(layer, x, torch.tensor([6, 4, 2]))["cosine"] == pytest.approx(1.0)  # k = 4h: exact
    layer.k = 3
    assert diagnosed(layer, x, torch.tensor([6, 4, 2]))["cosine"] < 0.999


def test_run_records_diagnostics_and_eval_history(tmp_path, shared_data):
    cfg = compose_config("k=20", "meprop.rule=unbiased", "data.train_limit=100", "epochs=1", "evals_per_epoch=2",
                         "diagnostics=true", "diagnostics_every=4", f"data.root={shared_data}")
    metrics = run(cfg, tmp_path)
    assert metrics["rule"] == "unbiased"
    assert [record["step"] for record in metrics["history"]] == [5, 10]
    assert metrics["best_dev"] == max(record["dev"] for record in metrics["history"])
    for layer in ("hidden.0", "hidden.1"):
        assert metrics["diagnostics"][layer]["step"] == [0, 4, 8]
        assert all(0.0 < c <= 1.0 + 1e-9 for c in metrics["diagnostics"][layer]["cosine"])
    assert (tmp_path / "tb").is_dir()
