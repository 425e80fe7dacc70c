"""Compaction is exact: a network with units masked to zero and the same network with them cut out agree."""

import copy

import pytest
import torch

from mesimp.nn import convert_to_meprop
from mesimp.nn.mlp import MLP, mlp_unit_groups
from mesimp.simplify import compact_group

KEEP = [torch.tensor([0, 2, 3, 6]), torch.tensor([1, 2, 4, 5, 6])]


def make_mlp(k):
    torch.manual_seed(0)
    model = MLP(6, [8, 7], 3).double()
    convert_to_meprop(model, k, exclude=["output"])
    return model


def masked_forward(model, x, keeps):
    h = x
    for layer, keep in zip(model.hidden, keeps):
        mask = torch.zeros(layer.out_features, dtype=h.dtype).index_fill_(0, keep, 1.0)
        h = layer(h).relu() * mask
    return model.output(h)


def surviving_grads(model, keeps):
    grads = {}
    for i, (layer, keep) in enumerate(zip(model.hidden, keeps)):
        rows = keep
        cols = keeps[i - 1] if i > 0 else torch.arange(layer.in_features)
        grads[f"hidden.{i}.weight"] = layer.weight.grad[rows][:, cols]
        grads[f"hidden.{i}.bias"] = layer.bias.grad[rows]
    grads["output.weight"] = model.output.weight.grad[:, keeps[-1]]
    grads["output.bias"] = model.output.bias.grad
    return grads


@pytest.mark.parametrize("k", [None, 2])
def test_masked_and_compacted_agree_on_outputs_and_gradients(k):
    masked = make_mlp(k)
    compact = copy.deepcopy(masked)
    for group, keep in zip(mlp_unit_groups(compact), KEEP):
        compact_group(group, keep)
    assert compact.hidden_dims == [4, 5] and compact.hidden[1].in_features == 4 and compact.output.in_features == 5

    x = torch.randn(9, 6, dtype=torch.float64)
    target = torch.randn(9, 3, dtype=torch.float64)
    y_masked = masked_forward(masked, x, KEEP)
    y_compact = compact(x)
    torch.testing.assert_close(y_compact, y_masked, rtol=0, atol=1e-12)

    ((y_masked - target) ** 2).sum().backward()
    ((y_compact - target) ** 2).sum().backward()
    expected = surviving_grads(masked, KEEP)
    for name, param in compact.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=0, atol=1e-12, msg=name)


@pytest.mark.parametrize("optim", [torch.optim.Adam, torch.optim.Adagrad, lambda p: torch.optim.SGD(p, 0.1, 0.9)])
def test_optimizer_state_is_sliced_with_the_parameters(optim):
    model = make_mlp(None)
    opt = optim(model.parameters())
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 6, dtype=torch.float64)).square().sum().backward()
        opt.step()
    old_w, old_next = model.hidden[0].weight, model.hidden[1].weight
    old_state, old_next_state = dict(opt.state[old_w]), dict(opt.state[old_next])
    compact_group(mlp_unit_groups(model)[0], KEEP[0], opt)

    params = [p for group in opt.param_groups for p in group["params"]]
    assert model.hidden[0].weight in {id(p): p for p in params}.values()
    assert all(p is not old_w and p is not old_next for p in params)
    assert len(params) == len(list(model.parameters()))
    for key, value in old_state.items():
        new = opt.state[model.hidden[0].weight][key]
        expected = value.index_select(0, KEEP[0]) if value.shape == old_w.shape else value
        assert torch.equal(new, expected), key
    for key, value in old_next_state.items():
        new = opt.state[model.hidden[1].weight][key]
        assert torch.equal(new, value.index_select(1, KEEP[0]) if value.shape == old_next.shape else value), key
    opt.step()  # still a consistent optimizer


def test_blocked_slices_cut_every_block():
    from torch import nn

    from mesimp.simplify import ParamSlice, UnitGroup

    gates = nn.Linear(3, 4 * 5)  # an LSTM-like layer: 4 blocks of 5 units
    group = UnitGroup("lstm", gates, [ParamSlice(gates, "weight", 0, blocks=4)], blocks=4)
    before = gates.weight.detach().clone()
    compact_group(group, torch.tensor([1, 3]))
    assert group.width == 2 and gates.weight.shape == (8, 3)
    assert torch.equal(gates.weight, before[[1, 3, 6, 8, 11, 13, 16, 18]])
    assert torch.equal(group.unit_counts(torch.arange(8)), torch.tensor([0 + 2 + 4 + 6, 1 + 3 + 5 + 7]))
