"""The optimizers by name: the fused implementations make the same updates as PyTorch's reference loops; the
learning-rate schedules."""

import pytest
import torch

from mesimp.engine.optim import build_optimizer, lr_schedule, set_lr, zero_moments

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


def test_constant_schedule_leaves_the_optimizer_alone_and_cosine_falls_from_lr_to_zero():
    assert lr_schedule("constant", 0.1, 100) is None
    lr_at = lr_schedule("cosine", 0.1, 100)
    assert lr_at(0) == 0.1 and lr_at(50) == pytest.approx(0.05) and lr_at(100) == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(map(lr_at, range(100)), map(lr_at, range(1, 101))))
    assert lr_at(150) == lr_at(100)  # past the end (a run extended by hand) it stays at its floor
    with pytest.raises(ValueError, match="step"):
        lr_schedule("step", 0.1, 100)


def test_set_lr_reaches_every_parameter_group():
    a, b = torch.nn.Parameter(torch.randn(2)), torch.nn.Parameter(torch.randn(2))
    optimizer = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    set_lr(optimizer, 0.01)
    assert [group["lr"] for group in optimizer.param_groups] == [0.01, 0.01]
