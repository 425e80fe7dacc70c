"""meProp inside an LSTM: one layer, one direction, with its own backward through time.

At time step t the gate pre-activations are ``z_t = W_ih x_t + W_hh h_{t-1} + b`` (4h entries, gates in
torch's order i, f, g, o). The backward computes ``dL/dz_t`` exactly from the element-wise gate equations,
then keeps only k of its entries per example (``scope="example"``) or one set of k for the minibatch at that
step (``scope="batch"``), and computes everything that flows through the two linear maps from those alone:
``dL/dh_{t-1}`` (through ``W_hh``, inside the time loop), ``dL/dx_t``, ``dL/dW_ih``, ``dL/dW_hh`` (after it).
The element-wise part of the backward (the cell state's path) stays dense, as in the paper.

``gates="joint"`` (default) ranks all 4h entries of ``dL/dz_t`` together, the issue's reading of "the gradient
of the pre-activations"; ``gates="per_gate"`` keeps k in each of the four gates (4k in all). The paper does not
say which it used.

``input_grad="dense"`` builds ``dL/dx_t`` from the whole ``dL/dz_t`` (``dL/dz_t W_ih``, exact given the top-k
recurrence) instead of its kept entries: the gradient into the word embeddings and features, which with AdaGrad
is where the tagger's last gap sits (docs/weight-gradient-rules.md). It costs one dense product with ``W_ih``
(in x 4h a token); the compiled time loop keeps each token's ``dL/dz`` for it.

Sequences of different lengths are run as a shrinking batch (longest first, as packed sequences): a finished
sequence takes no more work, and its outputs past its end are zero.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mesimp.nn import kernels
from mesimp.nn.meprop import (BackwardReport, ReportsBackward, Scope, Select, check_options, effective_k,
                              gradient_diagnostics, keep_per_example, select_units)
from mesimp.nn.sparse_grad import (CENTRED_RULES, SAMPLED_RULES, TOPK_RULES, BiasGrad, Rule, clock,
                                   kept_bias_grad, rule_weight_grad, sample_kept)

Gates = Literal["joint", "per_gate"]
GATES = ("joint", "per_gate")
InputGrad = Literal["topk", "dense"]
INPUT_GRADS = ("topk", "dense")


def _run(x: Tensor, batch_sizes: list[int], w_ih: Tensor, w_hh: Tensor, bias: Tensor, keep: bool):
    """The forward recurrence over time-major ``x`` (T, B, in) sorted longest first.

    Returns the hidden states ``H`` (T + 1, B, h) with ``H[0] = 0``, and when ``keep`` also the activated gates
    (T, B, 4h) and cell states (T + 1, B, h) that the backward needs.
    """
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    z_in = torch.addmm(bias, x.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, 4 * hidden)
    H = x.new_zeros(steps + 1, batch, hidden)
    C = x.new_zeros(steps + 1, batch, hidden)
    A = x.new_empty(steps, batch, 4 * hidden) if keep else None
    w_hh_t = w_hh.t()
    for t, b in enumerate(batch_sizes):
        z = torch.addmm(z_in[t, :b], H[t, :b], w_hh_t)
        a = torch.sigmoid(z)
        a[:, 2 * hidden : 3 * hidden] = torch.tanh(z[:, 2 * hidden : 3 * hidden])
        i, f, g, o = a.chunk(4, dim=1)
        c = torch.addcmul(f * C[t, :b], i, g)
        C[t + 1, :b] = c
        H[t + 1, :b] = o * torch.tanh(c)
        if keep:
            A[t, :b] = a
    return H, A, C


def _keep_gates(dz: Tensor, k: int, layer: "MePropLSTM") -> tuple[Tensor, Tensor]:
    """Kept entries of one step's (b, 4h) gradient: (indices, values), (b, k') per example or (k',), (b, k')
    for the whole minibatch."""
    rows, width = dz.shape
    hidden = width // 4
    if layer.scope == "example":
        if layer.gates == "joint":
            return keep_per_example(dz, k, layer.select, layer.generator)
        idx, val = keep_per_example(dz.reshape(rows * 4, hidden), k, layer.select, layer.generator)
        offsets = torch.arange(0, width, hidden, device=dz.device).view(1, 4, 1)
        return (idx.view(rows, 4, k) + offsets).view(rows, 4 * k), val.view(rows, 4 * k)
    if layer.gates == "joint":
        idx = select_units(dz, k, "batch", layer.select, layer.generator)
    else:
        idx = torch.cat([select_units(block, k, "batch", layer.select, layer.generator) + g * hidden
                         for g, block in enumerate(dz.split(hidden, dim=1))])
    return idx, dz.index_select(1, idx)


class _MePropLSTMFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, batch_sizes: list[int],
                layer: "MePropLSTM") -> Tensor:
        H, A, C = _run(x, batch_sizes, w_ih, w_hh, bias, keep=True)
        ctx.save_for_backward(x, w_ih, w_hh, H, A, C)
        ctx.batch_sizes = batch_sizes
        ctx.layer = layer
        ctx.params = (w_ih, w_hh)  # to see, at backward time, whether dense .grads will absorb sparse ones
        return H[1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor):
        x, w_ih, w_hh, H, A, C = ctx.saved_tensors
        layer: MePropLSTM = ctx.layer
        batch_sizes = ctx.batch_sizes
        steps, batch, hidden = d_out.shape
        width = 4 * hidden
        start = clock(d_out) if layer._report_hooks else 0.0
        k = layer.effective_k
        compiled = None
        need_x, need_ih, need_hh, need_b = ctx.needs_input_grad[:4]
        dense_dx = need_x and layer.input_grad == "dense"
        rule_needs_dz = layer.rule not in TOPK_RULES and (need_ih or need_hh)  # the whole dL/dz for dL/dW
        # the compiled loop keeps dL/dz rows only for the dense dL/dx; the sampled rules, dense_dw and the
        # diagnostics run the PyTorch loop
        if (k is not None and layer.scope == "example" and layer.select == "topk"
                and layer.rule in TOPK_RULES and not layer.diagnose):
            compiled = kernels.lstm_topk_bptt(A, C, d_out, w_hh, batch_sizes, k, layer.gates == "per_gate",
                                              keep_dz=dense_dx)
        if compiled is not None:
            # dL/dz's sum (the dense bias grad); each token's whole dL/dz only when the dense dL/dx asked for it
            dz_sum, indices, values, token_dz = compiled
        else:
            dZ, indices, values = _time_loop(d_out, w_hh, A, C, batch_sizes, k, layer)
            dz_flat = dZ.view(steps * batch, width)
            dz_sum = dz_flat.sum(0) if need_b or layer.rule in CENTRED_RULES else None
        x_flat = x.reshape(steps * batch, -1)
        h_prev = H[:-1].reshape(steps * batch, hidden)
        if k is None:
            indices = None
            dx = (dz_flat @ w_ih).view_as(x) if need_x else None
            dw_ih = dz_flat.t() @ x_flat if need_ih else None
            dw_hh = dz_flat.t() @ h_prev if need_hh else None
            db = dz_sum
        else:
            tokens = _token_positions(batch_sizes, batch, d_out.device)
            dz_rows, kept = None, (indices, values)  # dz_rows: each real token's whole dL/dz, where needed
            if dense_dx or rule_needs_dz:
                dz_rows = token_dz if compiled is not None else dz_flat.index_select(0, tokens)
            dx = None
            if need_x:
                dx = x.new_zeros(steps * batch, x.shape[-1])
                dx.index_copy_(0, tokens, dz_rows @ w_ih if dense_dx
                               else kernels.kept_times_weight(indices, values, w_ih))
                dx = dx.view_as(x)
            if rule_needs_dz and layer.rule in SAMPLED_RULES:
                kept = _sample_gates(dz_rows, indices, values, layer)
            dw_ih = rule_weight_grad(layer.rule, ctx.params[0], x_flat, dz_rows, dz_sum, *kept,
                                     tokens) if need_ih else None
            dw_hh = rule_weight_grad(layer.rule, ctx.params[1], h_prev, dz_rows, dz_sum, *kept,
                                     tokens) if need_hh else None
            db = None
            if need_b:
                db = dz_sum if layer.bias_grad == "dense" else kept_bias_grad(values, indices, width)
        if layer._report_hooks:
            seconds = clock(d_out) - start
            diagnostics = None
            if layer.diagnose and need_ih and need_hh:  # dz_flat exists: the diagnosed backward is never compiled
                real = _token_positions(batch_sizes, batch, d_out.device)
                diagnostics = gradient_diagnostics(dz_flat.index_select(0, real), [
                    x_flat.index_select(0, real), h_prev.index_select(0, real)], [dw_ih, dw_hh])
            layer._report(BackwardReport(indices, sum(batch_sizes), width, seconds, diagnostics))
        return dx, dw_ih, dw_hh, db, None, None


def _time_loop(d_out: Tensor, w_hh: Tensor, A: Tensor, C: Tensor, batch_sizes: list[int], k: int | None,
               layer: "MePropLSTM") -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The backward time loop in PyTorch: dL/dz (T, B, 4h) and, with k, the kept entries of every real token."""
    steps, batch, hidden = d_out.shape
    width = 4 * hidden
    dZ = d_out.new_zeros(steps, batch, width)  # dense dL/dz, for the bias and the dense path
    kept_idx: list[Tensor] = []
    kept_val: list[Tensor] = []
    dh = d_out.new_zeros(batch, hidden)
    dc = d_out.new_zeros(batch, hidden)
    for t in reversed(range(steps)):
        b = batch_sizes[t]
        i, f, g, o = A[t, :b].chunk(4, dim=1)
        tanh_c = torch.tanh(C[t + 1, :b])
        dh_t = d_out[t, :b] + dh[:b]
        dc_t = dc[:b] + dh_t * o * (1 - tanh_c * tanh_c)
        dz = dZ[t, :b]
        torch.mul(dc_t * g, i * (1 - i), out=dz[:, :hidden])
        torch.mul(dc_t * C[t, :b], f * (1 - f), out=dz[:, hidden : 2 * hidden])
        torch.mul(dc_t * i, 1 - g * g, out=dz[:, 2 * hidden : 3 * hidden])
        torch.mul(dh_t * tanh_c, o * (1 - o), out=dz[:, 3 * hidden :])
        dc[:b] = dc_t * f
        if k is None:
            dh[:b] = dz @ w_hh
            continue
        idx, val = _keep_gates(dz, k, layer)
        if idx.dim() == 1:  # one set for the minibatch: small dense products
            dh[:b] = val @ w_hh.index_select(0, idx)
            idx = idx.expand(b, -1)
        else:
            dh[:b] = kernels.kept_times_weight(idx, val, w_hh)
        kept_idx.append(idx)
        kept_val.append(val)
    if k is None:
        return dZ, None, None
    # token order: time-major, as the flat views
    return dZ, torch.cat(kept_idx[::-1]), torch.cat(kept_val[::-1]).contiguous()


def _sample_gates(dz: Tensor, indices: Tensor, values: Tensor, layer: "MePropLSTM") -> tuple[Tensor, Tensor]:
    """The sampled rules' entries of each token's (4h) dL/dz, in the same layout as its top-k (per gate or joint)."""
    if layer.gates == "joint":
        return sample_kept(dz, indices, values, layer.generator)
    rows, width = dz.shape
    hidden, k = width // 4, indices.shape[1] // 4
    offsets = torch.arange(0, width, hidden, device=dz.device).view(1, 4, 1)
    local = (indices.view(rows, 4, k) - offsets).view(rows * 4, k)
    idx, val = sample_kept(dz.reshape(rows * 4, hidden), local, values.reshape(rows * 4, k), layer.generator)
    return (idx.view(rows, 4, k) + offsets).view(rows, 4 * k), val.view(rows, 4 * k)


def _token_positions(batch_sizes: list[int], batch: int, device) -> Tensor:
    """Flat (t * batch + i) positions of the real tokens, time-major."""
    return torch.cat([torch.arange(b, device=device) + t * batch for t, b in enumerate(batch_sizes)])


class MePropLSTM(ReportsBackward, nn.Module):
    """A one-layer unidirectional LSTM with meProp's sparsified backward; forward is exactly an LSTM's.

    Parameters: ``weight_ih`` (4h, in), ``weight_hh`` (4h, h), ``bias`` (4h); gates stacked as torch's
    (i, f, g, o), so :meth:`from_lstm` copies an ``nn.LSTM`` (its two biases summed). ``k`` counts kept entries
    of the 4h gate gradient per example and time step (per gate with ``gates="per_gate"``); None, 0, or at
    least the ranked width gives the exact dense backward. ``input_grad``: dL/dx from the kept entries
    (``"topk"``, the paper) or from the whole dL/dz (``"dense"``, see the module's docstring). Report hooks get
    one :class:`BackwardReport` per backward, over every real token: ``indices`` (tokens, kept) of gate entries,
    ``width`` 4h.
    """

    def __init__(self, input_size: int, hidden_size: int, k: int | None = None, scope: Scope = "example",
                 select: Select = "topk", *, gates: Gates = "joint", bias_grad: BiasGrad = "dense",
                 rule: Rule = "topk", input_grad: InputGrad = "topk", generator: torch.Generator | None = None
                 ) -> None:
        super().__init__()
        check_options(scope, select, bias_grad, rule)
        if gates not in GATES:
            raise ValueError(f"gates must be one of {GATES}, got {gates!r}")
        if input_grad not in INPUT_GRADS:
            raise ValueError(f"input_grad must be one of {INPUT_GRADS}, got {input_grad!r}")
        effective_k(k, 4 * hidden_size)  # validates the sign
        self.input_size = input_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.k = k
        self.scope: Scope = scope
        self.select: Select = select
        self.gates: Gates = gates
        self.bias_grad: BiasGrad = bias_grad
        self.rule: Rule = rule
        self.input_grad: InputGrad = input_grad
        self.generator = generator
        self._report_hooks = OrderedDict()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's LSTM init: every parameter U(-1/sqrt(h), 1/sqrt(h))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM, k: int | None = None, **kwargs) -> "MePropLSTM":
        """A copy of a one-layer unidirectional ``nn.LSTM``'s weights (its two biases summed)."""
        if lstm.num_layers != 1 or lstm.bidirectional or lstm.proj_size:
            raise ValueError("from_lstm takes a one-layer, unidirectional nn.LSTM without projection")
        source = lstm.weight_ih_l0
        layer = cls(lstm.input_size, lstm.hidden_size, k, **kwargs).to(device=source.device, dtype=source.dtype)
        with torch.no_grad():
            layer.weight_ih.copy_(lstm.weight_ih_l0)
            layer.weight_hh.copy_(lstm.weight_hh_l0)
            if lstm.bias:
                layer.bias.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
            else:
                layer.bias.zero_()
        return layer

    @property
    def hidden_size(self) -> int:
        return self.weight_hh.shape[1]

    @property
    def out_features(self) -> int:
        """The width meProp ranks and reports: the 4h gate pre-activations."""
        return self.weight_hh.shape[0]

    @property
    def ranked_width(self) -> int:
        """How many entries one top-k ranks: all 4h, or one gate's h with ``gates="per_gate"``."""
        return self.hidden_size if self.gates == "per_gate" else self.out_features

    @property
    def effective_k(self) -> int | None:
        return effective_k(self.k, self.ranked_width)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Outputs (T, B, h) for time-major inputs (T, B, in); ``lengths`` (B,) on the CPU, default all T.

        Positions at or past a sequence's length get zero outputs and no gradient.
        """
        steps, batch, _ = x.shape
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long)
        if batch == 0 or int(lengths.min()) < 1 or int(lengths.max()) > steps:
            raise ValueError(f"need at least one sequence, with lengths in 1..{steps}; got {lengths.tolist()}")
        order = torch.argsort(lengths, descending=True, stable=True)
        longest = int(lengths.max())
        batch_sizes = (lengths.unsqueeze(0) > torch.arange(longest).unsqueeze(1)).sum(1).tolist()
        ordered = x.index_select(1, order.to(x.device))[:longest]
        if torch.is_grad_enabled() and any(p.requires_grad for p in (x, *self.parameters())):
            out = _MePropLSTMFunction.apply(ordered, self.weight_ih, self.weight_hh, self.bias, batch_sizes, self)
        else:
            out = _run(ordered, batch_sizes, self.weight_ih, self.weight_hh, self.bias, keep=False)[0][1:]
        out = F.pad(out, (0, 0, 0, 0, 0, steps - out.shape[0]))
        return out.index_select(1, torch.argsort(order).to(x.device))

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, k={self.k}, scope={self.scope}, select={self.select}, "
                f"gates={self.gates}, rule={self.rule}, input_grad={self.input_grad}")
