"""Every layer test runs twice: with the compiled kernels and with the pure-PyTorch fallback."""

import pytest

from mesimp.nn import kernels


@pytest.fixture(autouse=True, params=["compiled", "pytorch"])
def kernel_route(request):
    with kernels.use(request.param == "compiled"):
        yield request.param
