"""The optimizers by name: the fused implementations make the same updates as PyTorch's reference loops."""

import pytest
import torch

from mesimp.engine.optim import build_optimizer, zero_moments

REFERENCE = {"adam": lambda p, lr: torch.optim.Adam(p, lr=lr, foreach=False),
             "adagrad": lambda p, lr: torch.optim.Adagrad(p, lr=lr, eps=1e-8, foreach=False),
             "sgd": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, foreach=False)}


@pytest.mark.parametrize("name", ["adam", "adagrad", "sgd"])
def test_fused_updates_equal_the_reference_loop(name):
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(3)]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    kwargs = {"momentum": 0.9} if name == "sgd" else {}
    optimizers = [build_optimizer(name, ours, 0.1, **kwargs), REFERENCE[name](theirs, 0.1)]
    for step in range(5):
        grads = [torch.randn_like(t) for t in start]
        for params, optimizer in zip((ours, theirs), optimizers):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            optimizer.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_zero_moments_keeps_the_step_count():
    p = torch.nn.Parameter(torch.randn(4))
    optimizer = build_optimizer("adam", [p], 0.1)
    p.grad = torch.ones(4)
    optimizer.step()
    zero_moments(optimizer)
    state = optimizer.state[p]
    assert float(state["step"]) == 1 and not state["exp_avg"].any() and not state["exp_avg_sq"].any()
