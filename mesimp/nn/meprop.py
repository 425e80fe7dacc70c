"""meProp: a linear layer whose backward keeps only k entries of dL/dy per example (or per minibatch).

Forward is exactly ``torch.nn.Linear``. In backward, of the output gradient ``dy`` (rows = examples,
columns = output units) only k entries survive, and ``dL/dW`` and ``dL/dx`` are computed from those
alone, so the matrix work falls to k/out of the dense backward:

* ``scope="example"`` (the paper's meProp): each row keeps its own k entries.
* ``scope="batch"`` (the paper's "unified top-k"): one set of k columns for the whole minibatch,
  ranked by ``sum_i |dy[i, j]|`` as the authors' code does; the backward becomes small dense matmuls.
* ``select="topk"`` keeps the entries of largest magnitude; ``select="random"`` keeps k random ones
  (the paper's control), drawn from ``generator`` when given.
* ``rule`` (per-example top-k): how dL/dW is estimated. The paper's ``"topk"`` uses the same kept entries as
  dL/dx, a biased estimate of dy that can stop a network from training (the parser); ``"unbiased"`` samples k
  entries per row with E[S] = dy, and the ``"centred"`` rules keep the input-mean part of dL/dW exact.

``k`` of None, 0, or >= out_features gives the exact dense backward.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from mesimp.nn import kernels
from mesimp.nn.sparse_grad import (CENTRED_RULES, RULES, SAMPLED_RULES, BiasGrad, Rule, bias_grad, clock,
                                   kept_bias_grad, row_sparse_grad, rule_weight_grad, sample_uniforms)

Scope = Literal["example", "batch"]
Select = Literal["topk", "random"]

SCOPES = ("example", "batch")
SELECTS = ("topk", "random")
BIAS_GRADS = ("dense", "kept")


@dataclass(frozen=True)
class BackwardReport:
    """What one backward through a meProp layer did; handed to the layer's report hooks.

    ``indices`` holds the kept output units: shape (rows, k) for ``scope="example"``, (k,) shared by
    all rows for ``scope="batch"``, and None when the backward was dense (every unit kept).
    ``seconds`` is the wall time of the backward's own arithmetic (hooks excluded).
    """

    indices: Tensor | None
    rows: int
    width: int
    seconds: float
    # Only when the layer's ``diagnose`` flag was set for this backward (it costs a dense dL/dW): see
    # :func:`gradient_diagnostics`.
    diagnostics: dict[str, float] | None = None

    @property
    def kept_per_row(self) -> int:
        return self.width if self.indices is None else self.indices.shape[-1]

    def counts(self) -> Tensor:
        """How many rows (examples) kept each unit: an int64 tensor of length ``width``."""
        if self.indices is None:
            return torch.full((self.width,), self.rows, dtype=torch.int64)
        counts = torch.bincount(self.indices.reshape(-1).cpu(), minlength=self.width)
        return counts * self.rows if self.indices.dim() == 1 else counts


def gradient_diagnostics(dy: Tensor, inputs: list[Tensor], grads: list[Tensor | None]) -> dict[str, float]:
    """How far a layer's weight gradient is from the exact one, and why it may be biased.

    ``dy`` (rows, width): the layer's full output gradient; ``inputs``: the (rows, in) inputs of its weight
    matrices, ``grads`` the gradients the layer returned for them (dense or sparse). ``cosine``: between the
    returned and the exact dL/dW (all matrices together). ``input_mean_share``: the share of the inputs' summed
    squared norm that their minibatch mean carries (near 1: the rank-one mean term dominates dL/dW).
    ``dead_fraction``: units whose gradient is zero for every row of this minibatch (a ReLU that never fires).
    """
    dot = exact_sq = approx_sq = 0.0
    mean_sq = total_sq = 0.0
    for x, grad in zip(inputs, grads):
        exact = dy.t() @ x
        approx = exact if grad is None else (grad.to_dense() if grad.is_sparse else grad)
        dot += float((approx * exact).sum())
        exact_sq += float(exact.square().sum())
        approx_sq += float(approx.square().sum())
        mean_sq += float(x.mean(0).square().sum()) * x.shape[0]
        total_sq += float(x.square().sum())
    return {"cosine": dot / max((exact_sq * approx_sq) ** 0.5, 1e-300),
            "input_mean_share": mean_sq / max(total_sq, 1e-300),
            "dead_fraction": float((dy == 0).all(0).double().mean())}


class ReportsBackward:
    """Report hooks for a meProp module: each gets a :class:`BackwardReport` after every backward.

    Setting ``diagnose = True`` before a backward adds :func:`gradient_diagnostics` to its report.
    """

    _report_hooks: OrderedDict[int, Callable[[BackwardReport], None]]
    diagnose: bool = False

    def register_report_hook(self, hook: Callable[[BackwardReport], None]) -> RemovableHandle:
        handle = RemovableHandle(self._report_hooks)
        self._report_hooks[handle.id] = hook
        return handle

    def _report(self, report: BackwardReport) -> None:
        for hook in self._report_hooks.values():
            hook(report)


def check_options(scope: str, select: str, bias_grad: str, rule: str = "topk") -> None:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule != "topk" and (scope, select) != ("example", "topk"):
        raise ValueError(f"rule={rule!r} is a per-example top-k rule: it needs scope='example' and select='topk'")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if select not in SELECTS:
        raise ValueError(f"select must be one of {SELECTS}, got {select!r}")
    if bias_grad not in BIAS_GRADS:
        raise ValueError(f"bias_grad must be one of {BIAS_GRADS}, got {bias_grad!r}")


def effective_k(k: int | None, width: int) -> int | None:
    """The k a layer of this width really uses: None means the dense backward."""
    if k is None or k == 0 or k >= width:
        return None
    if k < 0:
        raise ValueError(f"k must be >= 0 or None, got {k}")
    return k


def select_units(
    dy: Tensor, k: int, scope: Scope, select: Select, generator: torch.Generator | None = None
) -> Tensor:
    """Indices of the kept entries of a 2-D gradient ``dy``: (rows, k) per example, (k,) per batch."""
    rows, width = dy.shape
    if select == "topk":
        if scope == "example":
            return dy.abs().topk(k, dim=1, sorted=False).indices
        return dy.abs().sum(dim=0).topk(k, sorted=False).indices
    if scope == "example":
        noise = torch.rand(rows, width, generator=generator, device=dy.device)
        return noise.topk(k, dim=1, sorted=False).indices
    return torch.randperm(width, generator=generator, device=dy.device)[:k]


def keep_per_example(dy: Tensor, k: int, select: Select, generator: torch.Generator | None = None
                     ) -> tuple[Tensor, Tensor]:
    """The kept entries of each row of a 2-D gradient: (indices, values), both (rows, k)."""
    if select == "topk":
        return kernels.topk_rows(dy, k)
    indices = select_units(dy, k, "example", select, generator)
    return indices, dy.gather(1, indices)


def _grad_to_add_into(layer: "MePropLinear", weight: Tensor) -> Tensor | None:
    """``weight.grad`` where the layer adds its dL/dW into it itself (``grad_in_place``), else None.

    Only for the centred rules, whose dL/dW is dense-shaped: autograd would sum it into ``.grad`` in a second pass
    over the whole matrix. Not while diagnosing, which compares the returned gradient with the exact one.
    """
    grad = weight.grad
    if (layer.grad_in_place and layer.rule in CENTRED_RULES and not layer.diagnose and grad is not None
            and grad.layout == torch.strided and not grad.requires_grad):
        return grad
    return None


class _MePropLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, layer: "MePropLinear") -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.layer = layer
        ctx.weight_param = weight  # to see, at backward time, whether a dense .grad will absorb a sparse one
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor):
        x, weight = ctx.saved_tensors
        layer: MePropLinear = ctx.layer
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        start = clock(dy) if layer._report_hooks else 0.0
        k = effective_k(layer.k, weight.shape[0])
        if k is None:
            indices = None
            dx = dy @ weight if need_x else None
            dw = dy.t() @ x if need_w else None
            db = dy.sum(0) if need_b else None
        elif layer.scope == "batch":
            fused = kernels.unified_backward(dy, x, weight, k, need_x, need_w) if layer.select == "topk" else None
            if fused is not None:
                indices, kept, dx, dw_rows = fused
            else:
                indices = select_units(dy, k, "batch", layer.select, layer.generator)
                kept = dy.index_select(1, indices)  # (rows, k): dense and small
                dx = kept @ weight.index_select(0, indices) if need_x else None
                dw_rows = kept.t() @ x if need_w else None
            dw = row_sparse_grad(ctx.weight_param, indices, dw_rows) if need_w else None
            db = bias_grad(dy, kept, indices, layer.bias_grad) if need_b else None
        else:
            # the dense bias gradient, and the centred rules' mean term
            sums = (need_b and layer.bias_grad == "dense") or (need_w and layer.rule in CENTRED_RULES)
            sampled = need_w and layer.rule in SAMPLED_RULES
            if layer.select == "topk":  # one pass over dy for the top-k, the rule's sample and the sums
                kept = kernels.keep_rows(dy, k, sample_uniforms(dy, layer.generator) if sampled else None, sums)
                indices, values, dy_sum = kept.indices, kept.values, kept.column_sums
            else:  # random-k: the paper's rule only
                kept = None
                indices, values = keep_per_example(dy, k, layer.select, layer.generator)
                dy_sum = dy.sum(0) if sums else None
            dx = kernels.kept_times_weight(indices, values, weight) if need_x else None
            dw = None
            if need_w:
                w_indices, w_values = kept.sample if sampled else (indices, values)
                into = _grad_to_add_into(layer, ctx.weight_param)
                dw = rule_weight_grad(layer.rule, ctx.weight_param, x, dy, dy_sum, w_indices, w_values, into=into)
                if into is not None:
                    dw = None  # already in weight.grad
            db = None
            if need_b:
                db = dy_sum if layer.bias_grad == "dense" else kept_bias_grad(values, indices, dy.shape[1])
        if layer._report_hooks:
            seconds = clock(dy) - start
            diagnostics = gradient_diagnostics(dy, [x], [dw]) if layer.diagnose and need_w else None
            layer._report(BackwardReport(indices, dy.shape[0], dy.shape[1], seconds, diagnostics))
        return dx, dw, db, None


class MePropLinear(ReportsBackward, nn.Linear):
    """``nn.Linear`` with meProp's sparsified backward (same parameters, init and state_dict keys).

    ``k``: entries of dL/dy kept per example (per minibatch for ``scope="batch"``); None, 0 or
    >= out_features is the exact dense backward. ``bias_grad="dense"`` (default) gives the bias the
    gradient of the full dy, as the authors' code does; ``"kept"`` uses the kept entries only.
    ``rule`` (per-example top-k only) chooses how dL/dW is built from dy (dL/dx always uses the top-k):
    ``"topk"`` the paper's S^T x, ``"unbiased"`` an unbiased k-entry sample of each row instead, ``"centred"``
    and ``"unbiased_centred"`` add the exact rank-one mean term, ``"dense_dw"`` the exact dy^T x (an ablation);
    :mod:`mesimp.nn.sparse_grad` has the formulas. The random rules draw from ``generator``.
    ``grad_in_place=True`` (the project's training loop sets it): with a centred rule and a dense ``weight.grad``
    the layer adds dL/dW into ``weight.grad`` itself and hands autograd nothing for the weight, saving a pass over
    the whole matrix; only for training loops that call ``backward()`` and read ``.grad`` (not for
    ``torch.autograd.grad`` or hooks on the weight, which would then not see this gradient).
    The attributes ``k``, ``scope``, ``select``, ``rule``, ``grad_in_place`` may be changed between steps.

    Report hooks (``register_report_hook``) receive a :class:`BackwardReport` after every backward;
    with none registered and a dense k, the layer runs plain ``F.linear`` and costs nothing extra.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        k: int | None = None,
        scope: Scope = "example",
        select: Select = "topk",
        bias: bool = True,
        *,
        bias_grad: BiasGrad = "dense",
        rule: Rule = "topk",
        generator: torch.Generator | None = None,
        grad_in_place: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        check_options(scope, select, bias_grad, rule)
        effective_k(k, out_features)  # validates the sign
        self.k = k
        self.rule: Rule = rule
        self.scope: Scope = scope
        self.select: Select = select
        self.bias_grad: BiasGrad = bias_grad
        self.generator = generator
        self.grad_in_place = grad_in_place
        self._report_hooks = OrderedDict()

    @classmethod
    def from_linear(cls, linear: nn.Linear, k: int | None, **kwargs) -> "MePropLinear":
        """A MePropLinear that shares ``linear``'s parameter tensors (build optimizers afterwards)."""
        layer = cls(linear.in_features, linear.out_features, k, bias=linear.bias is not None,
                    device="meta", **kwargs)
        layer.weight = linear.weight
        layer.bias = linear.bias
        return layer

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_grad_enabled() or (
            effective_k(self.k, self.out_features) is None and not self._report_hooks
        ):
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, self.in_features)
        y = _MePropLinearFunction.apply(flat, self.weight, self.bias, self)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, k={self.k}, scope={self.scope}, select={self.select}, rule={self.rule}"
