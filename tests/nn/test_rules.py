"""meProp's weight-gradient rules (MePropLinear ``rule=``) against float64 references of their formulas."""

import pytest
import torch

from mesimp.nn import MePropLinear, kernels
from mesimp.nn.sparse_grad import RULES

IN, OUT, ROWS, K = 9, 12, 16, 4


def top_mask(dy: torch.Tensor, k: int) -> torch.Tensor:
    kth = dy.abs().sort(dim=1, descending=True).values[:, k - 1 : k]
    return (dy.abs() >= kth).to(dy.dtype)


def reference_sample(dy: torch.Tensor, k: int, uniforms: torch.Tensor) -> torch.Tensor:
    """The sampled S of each row, written out row by row from the rule's definition (dense, float64)."""
    out = torch.zeros_like(dy)
    for r, row in enumerate(dy):
        mag = row.abs()
        if int((mag > 0).sum()) <= k:
            out[r] = row * top_mask(row[None], k)[0]
            continue
        # water-filling: the fewest capped entries such that p = |dy| / tau <= 1 for the rest, sum p = k
        order = mag.argsort(descending=True)
        for m in range(k):
            tau = mag[order[m:]].sum() / (k - m)
            if mag[order[m]] <= tau:
                break
        p = (mag / tau).clamp(max=1.0)
        p[order[:m]] = 1.0
        out[r, order[:m]] = row[order[:m]]
        cumulative, point = 0.0, float(uniforms[r])
        for j in range(len(row)):
            if j in set(order[:m].tolist()):
                continue
            cumulative += float(p[j])
            if cumulative > point:
                out[r, j] = row[j] / p[j]
                point += 1.0
    return out


def dense(indices: torch.Tensor, values: torch.Tensor, width: int) -> torch.Tensor:
    return torch.zeros(indices.shape[0], width, dtype=values.dtype).scatter_add_(1, indices, values)


@pytest.mark.parametrize("relu", [False, True])
def test_sample_rows_follows_its_definition(relu):
    torch.manual_seed(0)
    dy = torch.randn(ROWS, OUT, dtype=torch.float64) ** 3
    if relu:  # rows with fewer than k non-zero entries keep their top-k
        dy = dy * (torch.rand(ROWS, OUT) > 0.7)
    uniforms = torch.rand(ROWS, dtype=torch.float64)
    indices, values = kernels.topk_rows(dy, K)
    s_idx, s_val = kernels.sample_rows(dy, indices, values, uniforms)
    assert s_idx.shape == (ROWS, K)
    torch.testing.assert_close(dense(s_idx, s_val, OUT), reference_sample(dy, K, uniforms), rtol=1e-12, atol=1e-12)


def test_sample_rows_is_unbiased():
    torch.manual_seed(1)
    dy = torch.randn(3, 40, dtype=torch.float64) * torch.rand(3, 40, dtype=torch.float64) ** 4
    indices, values = kernels.topk_rows(dy, 6)
    # Systematic sampling: averaging over a fine grid of u gives the expectation to O(1/draws).
    draws = 4000
    total = torch.zeros_like(dy)
    for t in range(draws):
        uniforms = torch.full((3,), (t + 0.5) / draws, dtype=torch.float64)
        total += dense(*kernels.sample_rows(dy, indices, values, uniforms), 40)
    torch.testing.assert_close(total / draws, dy, rtol=0, atol=2e-3 * float(dy.abs().max()))
    top_only = dy * top_mask(dy, 6)
    assert (top_only - dy).abs().max() > 0.05 * dy.abs().max()  # the top-k alone is visibly biased here


def test_sample_rows_kernel_and_fallback_agree_in_float32():
    torch.manual_seed(2)
    dy = torch.randn(300, 500)
    uniforms = torch.rand(300, dtype=torch.float64)
    indices, values = kernels.topk_rows(dy, 20)
    with kernels.use(True):
        a = dense(*kernels.sample_rows(dy, indices, values, uniforms), 500)
    with kernels.use(False):
        b = dense(*kernels.sample_rows(dy, indices, values, uniforms), 500)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def run_rule(rule: str, x: torch.Tensor, dy: torch.Tensor, seed: int = 5):
    torch.manual_seed(0)
    layer = MePropLinear(IN, OUT, K, rule=rule, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x.clone().requires_grad_(True)
    (layer(x) * dy).sum().backward()
    return layer, x.grad, layer.weight.grad, layer.bias.grad


@pytest.mark.parametrize("rule", RULES)
def test_rule_gradients_equal_their_formula(rule):
    torch.manual_seed(3)
    x = torch.randn(ROWS, IN, dtype=torch.float64) + 2.0  # a large input mean, as in the parser
    dy = torch.randn(ROWS, OUT, dtype=torch.float64)
    layer, dx, dw, db = run_rule(rule, x, dy)
    top = dy * top_mask(dy, K)
    if rule in ("unbiased", "unbiased_centred"):
        uniforms = torch.rand(ROWS, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        kept = reference_sample(dy, K, uniforms)
    else:
        kept = top
    xbar = x.mean(0)
    expected = {
        "topk": kept.t() @ x,
        "unbiased": kept.t() @ x,
        "dense_dw": dy.t() @ x,
        "centred": kept.t() @ (x - xbar) + torch.outer(dy.sum(0), xbar),
        "unbiased_centred": kept.t() @ (x - xbar) + torch.outer(dy.sum(0), xbar),
    }[rule]
    torch.testing.assert_close(dw, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(dx, top @ layer.weight.detach(), rtol=0, atol=1e-12)  # dL/dx: the top-k always
    torch.testing.assert_close(db, dy.sum(0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
def test_rules_are_exact_when_k_covers_the_width(rule):
    torch.manual_seed(4)
    x = torch.randn(ROWS, IN, dtype=torch.float64)
    dy = torch.randn(ROWS, OUT, dtype=torch.float64)
    torch.manual_seed(0)
    layer = MePropLinear(IN, OUT, OUT, rule=rule, dtype=torch.float64)
    (layer(x) * dy).sum().backward()
    torch.testing.assert_close(layer.weight.grad, dy.t() @ x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rule", ["centred", "unbiased_centred"])
@pytest.mark.parametrize("rows, n_in", [(ROWS, IN), (3000, 700)])  # one and two threads in the kernel
def test_grad_in_place_adds_what_autograd_would(rule, rows, n_in):
    """grad_in_place: dL/dW is added into the dense .grad the loop keeps, equal to autograd's own sum."""
    torch.manual_seed(8)
    x = torch.randn(rows, n_in, dtype=torch.float64) + 2.0
    dy = torch.randn(rows, OUT, dtype=torch.float64)
    held = torch.randn(OUT, n_in, dtype=torch.float64)  # a gradient from an earlier backward
    grads = []
    for in_place in (False, True):
        torch.manual_seed(0)
        layer = MePropLinear(n_in, OUT, K, rule=rule, generator=torch.Generator().manual_seed(5),
                             grad_in_place=in_place, dtype=torch.float64)
        layer.weight.grad = held.clone()
        buffer = layer.weight.grad
        (layer(x) * dy).sum().backward()
        assert layer.weight.grad is buffer  # the loop's buffer, kept
        grads.append(layer.weight.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-12, atol=1e-12)
    assert not torch.equal(grads[0], held)


def test_grad_in_place_off_by_default_so_autograd_grad_sees_the_weight():
    torch.manual_seed(9)
    x = torch.randn(ROWS, IN, dtype=torch.float64)
    dy = torch.randn(ROWS, OUT, dtype=torch.float64)
    layer, _, dw, _ = run_rule("centred", x, dy)
    layer.weight.grad = torch.zeros_like(layer.weight)
    (got,) = torch.autograd.grad((layer(x) * dy).sum(), layer.weight)
    torch.testing.assert_close(got, dw, rtol=1e-12, atol=1e-12)
    assert torch.count_nonzero(layer.weight.grad) == 0


def test_unbiased_weight_gradient_is_unbiased_and_topk_is_not():
    """In distribution: over many draws the unbiased rule's dL/dW averages to the dense one; the paper's does not."""
    torch.manual_seed(6)
    x = torch.randn(ROWS, IN, dtype=torch.float64) + 1.0
    # softmax-like rows: one large negative entry, many small positive ones that top-k mostly drops
    dy = torch.rand(ROWS, OUT, dtype=torch.float64) * 0.3
    dy[torch.arange(ROWS), torch.randint(OUT, (ROWS,))] = -2.0
    exact = dy.t() @ x
    draws = 3000
    for rule in ("unbiased", "unbiased_centred"):
        torch.manual_seed(0)
        layer = MePropLinear(IN, OUT, K, rule=rule, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        total = torch.zeros_like(exact)
        for _ in range(draws):
            layer.weight.grad = None
            (layer(x) * dy).sum().backward()
            total += layer.weight.grad
        error = (total / draws - exact).norm() / exact.norm()
        assert error < 0.05, (rule, error)
    _, _, topk_dw, _ = run_rule("topk", x, dy)
    assert (topk_dw - exact).norm() / exact.norm() > 0.2


def test_rule_needs_per_example_topk():
    with pytest.raises(ValueError, match="per-example top-k"):
        MePropLinear(IN, OUT, K, scope="batch", rule="unbiased")
    with pytest.raises(ValueError, match="rule must be one of"):
        MePropLinear(IN, OUT, K, rule="biased")
