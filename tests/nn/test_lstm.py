"""The meProp LSTM: dense path against torch.nn.LSTM, sparse path against an independent masked reference (float64)."""

import pytest
import torch
from torch import nn

from mesimp.nn import BackwardReport
from mesimp.nn.lstm import MePropLSTM

IN, HID, STEPS = 7, 5, 6
LENGTHS = [[6, 6, 6], [4, 6, 2], [6, 3, 3, 1], [1]]


def lstm_pair(seed=0):
    torch.manual_seed(seed)
    reference = nn.LSTM(IN, HID).double()
    return reference, MePropLSTM.from_lstm(reference)


def reference_lstm(x, lengths, w_ih, w_hh, bias, grad_mask=None, seen=None):
    """A step-by-step autograd LSTM over padded inputs; ``grad_mask(t, dz, active)`` filters dL/dz_t.

    ``seen`` collects each step's dL/dz_t before the filter (what a dense bias gradient sums).
    """
    steps, batch, _ = x.shape
    h = x.new_zeros(batch, w_hh.shape[1])
    c = torch.zeros_like(h)
    outputs = []
    for t in range(steps):
        active = (lengths > t).unsqueeze(1)
        z = x[t] @ w_ih.t() + h @ w_hh.t() + bias
        if grad_mask is not None:
            def keep(dz, t=t, active=active.squeeze(1)):
                if seen is not None:
                    seen.append(dz)
                return dz * grad_mask(t, dz, active)

            z.register_hook(keep)
        i, f, g, o = z.chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        c, h = torch.where(active, c_new, c), torch.where(active, h_new, h)
        outputs.append(torch.where(active, h_new, torch.zeros_like(h_new)))
    return torch.stack(outputs)


def topk_mask(k, scope, per_gate):
    """Keep the top-k of |dz| among the active rows: per row or summed over them; jointly or in each gate."""

    def mask(t, dz, active):
        blocks = dz.abs().view(dz.shape[0], 4 if per_gate else 1, -1)
        if scope == "batch":
            blocks = blocks[active].sum(0, keepdim=True).expand_as(blocks)
        kth = blocks.sort(dim=2, descending=True).values[:, :, k - 1 : k]
        return (blocks >= kth).view_as(dz).to(dz.dtype)

    return mask


def grads(layer_out, inputs, weights):
    torch.manual_seed(99)
    upstream = torch.randn_like(layer_out)
    return torch.autograd.grad((layer_out * upstream).sum(), [inputs, *weights])


def inputs(lengths, seed=1):
    torch.manual_seed(seed)
    return torch.randn(STEPS, len(lengths), IN, dtype=torch.float64, requires_grad=True), torch.tensor(lengths)


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("k", [None, 0, 4 * HID, 4 * HID + 3])
def test_dense_path_equals_torch_lstm(lengths, k):
    reference, layer = lstm_pair()
    layer.k = k
    x, n = inputs(lengths)
    out = layer(x, n)
    packed = nn.utils.rnn.pack_padded_sequence(x, n, enforce_sorted=False)
    ref_out = nn.utils.rnn.pad_packed_sequence(reference(packed)[0], total_length=STEPS)[0]
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-14)
    ours = grads(out, x, [layer.weight_ih, layer.weight_hh, layer.bias])
    theirs = grads(ref_out, x, [reference.weight_ih_l0, reference.weight_hh_l0, reference.bias_ih_l0])
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("scope", ["example", "batch"])
@pytest.mark.parametrize("gates,k", [("joint", 1), ("joint", 7), ("joint", 4 * HID - 1), ("per_gate", 1),
                                     ("per_gate", HID - 1)])
@pytest.mark.parametrize("bias_grad", ["dense", "kept"])
def test_sparse_gradients_equal_masked_reference(lengths, scope, gates, k, bias_grad):
    _, layer = lstm_pair()
    layer.k, layer.scope, layer.gates, layer.bias_grad = k, scope, gates, bias_grad
    x, n = inputs(lengths)
    weights = [layer.weight_ih, layer.weight_hh, layer.bias]
    ours = grads(layer(x, n), x, weights)
    seen = []
    masked = reference_lstm(x, n, *weights, grad_mask=topk_mask(k, scope, gates == "per_gate"), seen=seen)
    theirs = list(grads(masked, x, weights))
    if bias_grad == "dense":  # the authors' convention: the bias sees the whole dL/dz
        theirs[3] = torch.stack(seen).sum((0, 1))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_sparse_path_differs_from_dense():
    """Guards the reference comparisons: with a small k the gradients really change."""
    _, layer = lstm_pair()
    x, n = inputs([6, 4])
    weights = [layer.weight_ih, layer.weight_hh, layer.bias]
    dense = grads(layer(x, n), x, weights)
    layer.k = 2
    sparse = grads(layer(x, n), x, weights)
    assert (dense[1] - sparse[1]).abs().max() > 1e-3
    assert (dense[0] - sparse[0]).abs().max() > 1e-3


@pytest.mark.parametrize("scope", ["example", "batch"])
def test_random_selection_uses_reported_indices(scope):
    """Random k: the gradient is the masked reference's for the very entries the layer reports it kept."""
    _, layer = lstm_pair()
    layer.k, layer.scope, layer.select, layer.bias_grad = 3, scope, "random", "kept"
    layer.generator = torch.Generator().manual_seed(5)
    reports: list[BackwardReport] = []
    layer.register_report_hook(reports.append)
    lengths = [6, 4, 1]  # sorted longest first, so the layer's token order is the reference's
    x, n = inputs(lengths)
    weights = [layer.weight_ih, layer.weight_hh, layer.bias]
    ours = grads(layer(x, n), x, weights)
    (report,) = reports
    assert report.indices.shape == (sum(lengths), 3) and report.rows == sum(lengths) and report.width == 4 * HID
    starts = torch.tensor([0, *torch.cumsum(torch.tensor([sum(m > t for m in lengths) for t in range(6)]), 0)])

    def replay(t, dz, active):
        mask = torch.zeros_like(dz)
        kept = report.indices[starts[t] : starts[t + 1]]
        mask[: len(kept)].scatter_(1, kept, 1.0)
        if scope == "batch":
            assert (kept == kept[0]).all()  # one index set per step
        return mask

    theirs = grads(reference_lstm(x, n, *weights, grad_mask=replay), x, weights)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_report_counts_real_tokens_and_kept_entries():
    _, layer = lstm_pair()
    layer.k, layer.gates = 2, "per_gate"
    reports = []
    layer.register_report_hook(reports.append)
    x, n = inputs([5, 2])
    layer(x, n).sum().backward()
    (report,) = reports
    assert report.rows == 7 and report.kept_per_row == 8 and report.counts().sum() == 7 * 8
    gates_of_each = report.indices.div(HID, rounding_mode="floor")
    assert (gates_of_each.sort(dim=1).values == torch.arange(4).repeat_interleave(2)).all()


def test_sparse_weight_grad_accumulates_into_existing_grad():
    """With a dense .grad present (zero_grad(set_to_none=False)), the row-sparse gradient adds in place."""
    _, layer = lstm_pair()
    layer.k = 1
    x, n = inputs([1])  # one token, k=1: a single row of each weight gets a gradient
    layer(x, n).sum().backward()
    fresh = [p.grad.clone() for p in layer.parameters()]
    layer(x, n).sum().backward()
    for param, once in zip(layer.parameters(), fresh):
        torch.testing.assert_close(param.grad, 2 * once, rtol=0, atol=1e-14)
    assert (fresh[0].abs().sum(1) > 0).sum() == 1


def test_kept_bias_gradient_uses_kept_entries_only():
    _, layer = lstm_pair()
    layer.k, layer.bias_grad = 1, "kept"
    x, n = inputs([1])
    layer(x, n).sum().backward()
    assert int((layer.bias.grad != 0).sum()) == 1


def test_no_grad_forward_matches_training_forward():
    _, layer = lstm_pair()
    x, n = inputs([6, 2, 4])
    with torch.no_grad():
        evaluated = layer(x, n)
    torch.testing.assert_close(evaluated, layer(x, n).detach(), rtol=0, atol=0)
    assert (evaluated[2:, 1] == 0).all()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="gates"):
        MePropLSTM(IN, HID, gates="some")
    with pytest.raises(ValueError, match="scope"):
        MePropLSTM(IN, HID, scope="tokens")
    _, layer = lstm_pair()
    x, _ = inputs([3])
    with pytest.raises(ValueError, match="lengths"):
        layer(x, torch.tensor([STEPS + 1]))


def rule_references(layer, lengths, k, per_gate):
    """dL/dW_ih and dL/dW_hh of each deterministic weight-gradient rule, from the reference's dL/dz (float64)."""
    x, n = inputs(lengths)
    weights = [layer.weight_ih, layer.weight_hh, layer.bias]
    hidden_out = layer(x, n).detach()
    seen = []
    masked = reference_lstm(x, n, *weights, grad_mask=topk_mask(k, "example", per_gate), seen=seen)
    top_dx = grads(masked, x, weights)[0]
    dz = torch.stack(seen[::-1])  # the hooks fire from the last step back
    active = (n.unsqueeze(0) > torch.arange(STEPS).unsqueeze(1))  # (T, B): real tokens
    h_prev = torch.cat([torch.zeros_like(hidden_out[:1]), hidden_out[:-1]])
    mask = torch.stack([topk_mask(k, "example", per_gate)(t, dz[t], active[t]) for t in range(STEPS)])
    dz_r, top_r, x_r, h_r = dz[active], (dz * mask)[active], x.detach()[active], h_prev[active]
    refs = {"dense_dw": (dz_r.t() @ x_r, dz_r.t() @ h_r),
            "centred": tuple(top_r.t() @ (v - v.mean(0)) + torch.outer(dz_r.sum(0), v.mean(0)) for v in (x_r, h_r))}
    return x, n, top_dx, refs


@pytest.mark.parametrize("lengths", LENGTHS[:3])
@pytest.mark.parametrize("gates,k", [("joint", 7), ("per_gate", 2)])
def test_weight_gradient_rules_equal_their_formula(lengths, gates, k):
    """dense_dw and centred against their formulas; the sampled rules average to the exact dL/dW (dense_dw's)."""
    _, layer = lstm_pair()
    layer.k, layer.gates = k, gates
    x, n, top_dx, refs = rule_references(layer, lengths, k, gates == "per_gate")
    weights = [layer.weight_ih, layer.weight_hh]
    for rule in ("dense_dw", "centred"):
        layer.rule = rule
        dx, dw_ih, dw_hh = grads(layer(x, n), x, weights)
        torch.testing.assert_close(dx, top_dx, rtol=0, atol=1e-13)  # dL/dx: the top-k, whatever the rule
        torch.testing.assert_close(dw_ih, refs[rule][0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(dw_hh, refs[rule][1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("gates,k", [("joint", 7), ("per_gate", 2)])
@pytest.mark.parametrize("rule", ["topk", "dense_dw"])
def test_dense_input_grad_is_each_tokens_whole_dz_times_w_ih(lengths, gates, k, rule):
    """input_grad="dense": dL/dx_t = dL/dz_t W_ih with dL/dz_t from the top-k recurrence (the masked reference's
    dL/dz before its filter); the weight gradients stay the rule's."""
    _, layer = lstm_pair()
    layer.k, layer.gates, layer.rule = k, gates, rule
    x, n = inputs(lengths)
    weights = [layer.weight_ih, layer.weight_hh, layer.bias]
    topk_grads = grads(layer(x, n), x, weights)
    layer.input_grad = "dense"
    dx, *weight_grads = grads(layer(x, n), x, weights)
    seen = []
    grads(reference_lstm(x, n, *weights, grad_mask=topk_mask(k, "example", gates == "per_gate"), seen=seen),
          x, weights)  # the same upstream gradient as the layer's
    dz = torch.stack(seen[::-1])  # (T, B, 4h); zero at padded positions
    torch.testing.assert_close(dx, dz @ layer.weight_ih.detach(), rtol=1e-10, atol=1e-13)
    assert not torch.allclose(dx, topk_grads[0])
    for ours, topk in zip(weight_grads, topk_grads[1:]):
        torch.testing.assert_close(ours, topk, rtol=0, atol=1e-13)


def test_input_grad_is_checked():
    with pytest.raises(ValueError, match="input_grad"):
        MePropLSTM(IN, HID, input_grad="exact")


@pytest.mark.parametrize("gates,k", [("joint", 7), ("per_gate", 2)])
def test_sampled_weight_gradient_rules_average_to_the_exact_one(gates, k):
    _, layer = lstm_pair()
    layer.k, layer.gates = k, gates
    x, n, _, refs = rule_references(layer, [6, 4, 1], k, gates == "per_gate")
    weights = [layer.weight_ih, layer.weight_hh]
    layer.generator = torch.Generator().manual_seed(0)
    draws = 300
    for rule in ("unbiased", "unbiased_centred"):
        layer.rule = rule
        total = [torch.zeros_like(w) for w in weights]
        for _ in range(draws):
            for t, g in zip(total, grads(layer(x, n), x, weights)[1:]):
                t += g
        for t, exact in zip(total, refs["dense_dw"]):
            assert (t / draws - exact).norm() < 0.06 * exact.norm(), rule  # the paper's top-k rule: 0.16-0.32
