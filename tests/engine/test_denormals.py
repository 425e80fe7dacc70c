"""Flushing subnormal floats: on every thread of torch's pool with the compiled kernels, and undone again (every
test starts and ends with IEEE arithmetic: tests/conftest.py)."""

import pytest
import torch

from mesimp.engine.denormals import flush_denormals
from mesimp.nn import kernels

SUBNORMAL_BITS = 1000  # as float32: about 1.4e-42, below the smallest normal float (1.2e-38)


def subnormals(n: int) -> torch.Tensor:
    # from a bit pattern: a conversion to float would itself be flushed once the mode is on
    return torch.full((n,), SUBNORMAL_BITS, dtype=torch.int32).view(torch.float32)


@pytest.mark.skipif(kernels.compiled() is None, reason="needs the compiled kernels")
def test_every_thread_of_the_pool_flushes():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = subnormals(2**20)  # large enough that the multiply is split across threads
        assert int((x * 2.0).count_nonzero()) == x.numel()  # IEEE: subnormals are numbers
        (x * 2.0).sum()  # the pool's threads exist now, started before the mode is set
        assert flush_denormals(True) is True
        assert int((x * 2.0).count_nonzero()) == 0
        flush_denormals(False)
        assert int((x * 2.0).count_nonzero()) == x.numel()
    finally:
        torch.set_num_threads(before)


def test_without_kernels_this_thread_flushes():
    with kernels.use(False):
        assert flush_denormals(True) is True
        assert float(subnormals(1)[0] * 2.0) == 0.0
        flush_denormals(False)
        assert float(subnormals(1)[0] * 2.0) > 0.0


@pytest.mark.skipif(kernels.compiled() is None, reason="needs the compiled kernels")
def test_adam_on_flushed_moments_matches_ieee_to_below_the_smallest_normal():
    # what flushing changes in training: moments below 1.2e-38 become zero, the weights move by no more than that
    weights = {}
    for flush in (False, True):
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(1000))
        opt = torch.optim.Adam([p], lr=1e-3, fused=True)
        p.grad = torch.randn(1000)
        opt.step()
        flush_denormals(flush)
        opt.state[p]["exp_avg"].copy_(subnormals(1000))
        p.grad.zero_()
        opt.step()
        weights[flush] = p.detach().clone()
    torch.testing.assert_close(weights[True], weights[False], rtol=0, atol=1e-30)
