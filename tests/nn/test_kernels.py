"""The compiled kernels against their pure-PyTorch fallbacks and dense references."""

import shutil

import pytest
import torch

from mesimp.nn import kernels


def test_kernels_are_built_where_a_compiler_exists(kernel_route):
    if kernel_route == "compiled" and shutil.which("c++"):
        assert kernels.compiled() is not None, "make install builds them"


def kept_matrix(indices, values, width):
    return torch.zeros(indices.shape[0], width, dtype=values.dtype).scatter_(1, indices, values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows,width,k", [(7, 9, 3), (33, 500, 20), (5, 300, 80), (4, 70, 70), (1, 5, 1)])
def test_topk_rows_keeps_the_largest_magnitudes(dtype, rows, width, k):
    torch.manual_seed(0)
    dy = torch.randn(rows, width, dtype=dtype)
    indices, values = kernels.topk_rows(dy, k)
    assert indices.shape == values.shape == (rows, k) and indices.dtype == torch.long
    expected = dy.abs().topk(k, dim=1).indices.sort(1).values
    assert torch.equal(indices.sort(1).values, expected)
    assert torch.equal(values, dy.gather(1, indices))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows,out,inp,k", [(6, 9, 5, 2), (40, 50, 300, 7), (3, 8, 257, 8)])
def test_products_equal_the_dense_masked_ones(dtype, rows, out, inp, k):
    torch.manual_seed(1)
    dy = torch.randn(rows, out, dtype=dtype)
    weight = torch.randn(out, inp, dtype=dtype)
    x = torch.randn(rows, inp, dtype=dtype)
    indices, values = kernels.topk_rows(dy, k)
    kept = kept_matrix(indices, values, out)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=0, atol=1e-12)
    torch.testing.assert_close(kernels.kept_times_weight(indices, values, weight), kept @ weight, **tol)
    slot = torch.arange(out)
    torch.testing.assert_close(kernels.kept_t_times_input(indices, values, x, slot, out), kept.t() @ x, **tol)


def test_weight_product_compacts_units_and_maps_rows_to_inputs():
    torch.manual_seed(2)
    x = torch.randn(10, 6, dtype=torch.float64)
    indices = torch.tensor([[4, 1], [1, 7]])
    values = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
    example = torch.tensor([8, 3])  # the two kept rows belong to rows 8 and 3 of x
    slot = torch.full((9,), -1)
    slot[torch.tensor([1, 4, 7])] = torch.arange(3)
    got = kernels.kept_t_times_input(indices, values, x, slot, 3, example)
    expected = torch.stack([2.0 * x[8] + 3.0 * x[3], 1.0 * x[8], -1.0 * x[3]])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)
