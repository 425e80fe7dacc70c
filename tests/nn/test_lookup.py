"""The lookup's gradient against torch's embedding backward (float64), with repeated ids, small and large."""

import pytest
import torch
import torch.nn.functional as F

from mesimp.nn.lookup import lookup


@pytest.mark.parametrize("shape,rows", [((7, 3), 5), ((20_000, 48), 300)])  # one slice; a slice per thread
def test_values_and_table_gradient_equal_embeddings(shape, rows):
    torch.manual_seed(0)
    ids = torch.randint(0, rows, shape)
    ids[0, 0] = ids[-1, -1] = 1  # a row looked up from both ends
    table = torch.randn(rows, 6, dtype=torch.float64, requires_grad=True)
    reference = table.detach().clone().requires_grad_(True)
    upstream = torch.randn(*shape, 6, dtype=torch.float64)
    out = lookup(ids, table)
    expected = F.embedding(ids, reference)
    assert torch.equal(out, expected)
    out.backward(upstream)
    expected.backward(upstream)
    torch.testing.assert_close(table.grad, reference.grad, rtol=0, atol=1e-10)


def test_without_gradient_it_is_a_plain_lookup():
    table = torch.randn(4, 2)
    with torch.no_grad():
        assert torch.equal(lookup(torch.tensor([3, 0]), table), table[[3, 0]])
