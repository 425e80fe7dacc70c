"""meProp backward against a dense masked reference, in float64."""

import pytest
import torch
from torch import nn

from mesimp.nn import BackwardReport, MePropLinear, effective_k, select_units
from mesimp.nn.meprop import _MePropLinearFunction

IN, OUT = 7, 6
SCOPES = ["example", "batch"]
SELECTS = ["topk", "random"]


def make_layer(k, scope="example", select="topk", seed=0, **kwargs):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(123) if select == "random" else None
    return MePropLinear(IN, OUT, k, scope, select, generator=gen, dtype=torch.float64, **kwargs)


def independent_mask(dy: torch.Tensor, k: int, scope: str, select: str) -> torch.Tensor:
    """The kept-entry mask, computed without mesimp's selection code (random: replays the generator)."""
    k = min(k, dy.shape[1]) if k else dy.shape[1]
    if select == "random":
        idx = select_units(dy, k, scope, "random", torch.Generator().manual_seed(123)) if k < dy.shape[1] else None
        if idx is None:
            return torch.ones_like(dy)
        mask = torch.zeros_like(dy)
        return mask.scatter_(1, idx, 1.0) if scope == "example" else mask.index_fill_(1, idx, 1.0)
    if scope == "example":
        kth = dy.abs().sort(dim=1, descending=True).values[:, k - 1 : k]
        return (dy.abs() >= kth).to(dy.dtype)
    score = dy.abs().sum(0)
    kth = score.sort(descending=True).values[k - 1]
    return (score >= kth).to(dy.dtype).expand_as(dy)


def run(layer, x, dy):
    x = x.clone().requires_grad_(True)
    y = layer(x)
    (y * dy).sum().backward()
    return x.grad, layer.weight.grad, layer.bias.grad


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("select", SELECTS)
@pytest.mark.parametrize("k", [1, OUT - 1, OUT, OUT + 3, None, 0])
@pytest.mark.parametrize("shape", [(5,), (1,), (3, 4)])
@pytest.mark.parametrize("bias_grad", ["dense", "kept"])
def test_gradients_equal_masked_dense_reference(scope, select, k, shape, bias_grad):
    layer = make_layer(k, scope, select, bias_grad=bias_grad)
    torch.manual_seed(1)
    x = torch.randn(*shape, IN, dtype=torch.float64)
    dy = torch.randn(*shape, OUT, dtype=torch.float64)
    dx, dw, db = run(layer, x, dy)

    x2, dy2 = x.reshape(-1, IN), dy.reshape(-1, OUT)
    masked = dy2 * independent_mask(dy2, k, scope, select)
    torch.testing.assert_close(dx, (masked @ layer.weight.detach()).reshape(x.shape), rtol=0, atol=1e-12)
    torch.testing.assert_close(dw, masked.t() @ x2, rtol=0, atol=1e-12)
    expected_db = dy2.sum(0) if bias_grad == "dense" or effective_k(k, OUT) is None else masked.sum(0)
    torch.testing.assert_close(db, expected_db, rtol=0, atol=1e-12)
    assert dw.layout == torch.strided


@pytest.mark.parametrize("scope", SCOPES)
def test_sparse_path_really_drops_entries(scope):
    layer = make_layer(2, scope)
    x, dy = torch.randn(4, IN, dtype=torch.float64), torch.randn(4, OUT, dtype=torch.float64)
    _, dw, _ = run(layer, x, dy)
    full = dy.t() @ x
    assert not torch.allclose(dw, full)
    zero_rows = (dw.abs().sum(1) == 0).sum().item()
    assert zero_rows >= (OUT - 2 if scope == "batch" else 0)


@pytest.mark.parametrize("scope", SCOPES)
def test_existing_dense_grad_accumulates_sparse_rows_in_place(scope):
    layer = make_layer(2, scope)
    x, dy = torch.randn(4, IN, dtype=torch.float64), torch.randn(4, OUT, dtype=torch.float64)
    _, first, _ = run(layer, x, dy)
    first = first.clone()
    storage = layer.weight.grad.data_ptr()
    run(layer, x, dy)
    assert layer.weight.grad.layout == torch.strided
    assert layer.weight.grad.data_ptr() == storage
    torch.testing.assert_close(layer.weight.grad, 2 * first, rtol=0, atol=1e-12)


def test_random_select_uses_generator_and_differs_from_topk():
    dy = torch.randn(50, 40, dtype=torch.float64)
    a = select_units(dy, 5, "example", "random", torch.Generator().manual_seed(7))
    b = select_units(dy, 5, "example", "random", torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert all(len(set(row.tolist())) == 5 for row in a)
    assert not torch.equal(a.sort(1).values, select_units(dy, 5, "example", "topk").sort(1).values)
    shared = select_units(dy, 5, "batch", "random", torch.Generator().manual_seed(7))
    assert shared.shape == (5,) and len(set(shared.tolist())) == 5


@pytest.mark.parametrize("scope", SCOPES)
def test_topk_keeps_the_largest_magnitudes(scope):
    dy = torch.randn(8, 30, dtype=torch.float64)
    idx = select_units(dy, 4, scope, "topk")
    score = dy.abs() if scope == "example" else dy.abs().sum(0, keepdim=True)
    idx2 = idx if scope == "example" else idx.unsqueeze(0)
    kept = score.gather(1, idx2)
    dropped = score.scatter(1, idx2, float("-inf"))
    assert (kept.min(1).values >= dropped.max(1).values).all()


@pytest.mark.parametrize("scope", SCOPES)
def test_gradcheck_where_meprop_is_exact(scope):
    """With at most k non-zero entries of dy per row, meProp's gradient is the true gradient."""
    k = 3
    layer = make_layer(k, scope)
    w = layer.weight.detach().clone().requires_grad_(True)
    b = layer.bias.detach().clone().requires_grad_(True)
    x = torch.randn(4, IN, dtype=torch.float64, requires_grad=True)

    def loss(x, w, b):
        return _MePropLinearFunction.apply(x, w, b, layer)[:, 1 : 1 + k].sin()

    assert torch.autograd.gradcheck(loss, (x, w, b))


def test_gradcheck_dense_mode():
    layer = make_layer(None)
    layer.register_report_hook(lambda report: None)  # forces the custom Function in dense mode
    w = layer.weight.detach().clone().requires_grad_(True)
    b = layer.bias.detach().clone().requires_grad_(True)
    x = torch.randn(4, IN, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: _MePropLinearFunction.apply(x, w, b, layer), (x, w, b))


def test_forward_and_state_dict_match_nn_linear():
    layer = make_layer(2)
    ref = nn.Linear(IN, OUT, dtype=torch.float64)
    ref.load_state_dict(layer.state_dict())
    assert list(layer.state_dict()) == list(ref.state_dict())
    x = torch.randn(3, 5, IN, dtype=torch.float64)
    torch.testing.assert_close(layer(x), ref(x), rtol=0, atol=0)


@pytest.mark.parametrize("scope", SCOPES)
def test_report_hook_sees_kept_units(scope):
    layer = make_layer(2, scope)
    reports: list[BackwardReport] = []
    handle = layer.register_report_hook(reports.append)
    run(layer, torch.randn(3, 2, IN, dtype=torch.float64), torch.randn(3, 2, OUT, dtype=torch.float64))
    (report,) = reports
    assert report.rows == 6 and report.width == OUT and report.kept_per_row == 2 and report.seconds > 0
    counts = report.counts()
    assert counts.shape == (OUT,) and counts.sum().item() == 6 * 2
    if scope == "batch":
        assert set(counts.tolist()) <= {0, 6}
    handle.remove()
    run(layer, torch.randn(3, IN, dtype=torch.float64), torch.randn(3, OUT, dtype=torch.float64))
    assert len(reports) == 1


def test_dense_report_counts_every_unit():
    layer = make_layer(None)
    reports = []
    layer.register_report_hook(reports.append)
    run(layer, torch.randn(4, IN, dtype=torch.float64), torch.randn(4, OUT, dtype=torch.float64))
    assert reports[0].indices is None and reports[0].kept_per_row == OUT
    assert reports[0].counts().tolist() == [4] * OUT


def test_no_hooks_and_dense_k_uses_plain_linear():
    layer = make_layer(None)
    y = layer(torch.randn(2, IN, dtype=torch.float64, requires_grad=True))
    assert "MePropLinear" not in type(y.grad_fn).__name__


@pytest.mark.parametrize("kwargs", [{"k": -1}, {"scope": "rows"}, {"select": "best"}, {"bias_grad": "none"}])
def test_bad_arguments_raise(kwargs):
    args = {"k": 2, **kwargs}
    with pytest.raises(ValueError):
        MePropLinear(IN, OUT, **args)
