"""Gradients of a linear map ``y = x W^T + b`` from the kept entries of ``dL/dy`` (shared by meProp's layers).

The kept entries come as ``indices`` and ``values``, (rows, k) each. The products then cost k / width of the
dense ones (:mod:`mesimp.nn.kernels` does the arithmetic).
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from torch import Tensor

from mesimp.nn import kernels

BiasGrad = Literal["dense", "kept"]
# How a per-example layer builds dL/dW (dL/dx always comes from the top-k): see MePropLinear and docs/results.md's
# "What we found" for why the paper's rule (topk) is biased and what each of the others does about it.
Rule = Literal["topk", "dense_dw", "centred", "unbiased", "unbiased_centred"]
RULES = ("topk", "dense_dw", "centred", "unbiased", "unbiased_centred")
SAMPLED_RULES = ("unbiased", "unbiased_centred")
CENTRED_RULES = ("centred", "unbiased_centred")
TOPK_RULES = ("topk", "centred")  # computed from the top-k alone: they need no other entry of dy


def example_weight_grad(weight: Tensor, x: Tensor, indices: Tensor, values: Tensor,
                        example: Tensor | None = None) -> Tensor:
    """dL/dW = S^T x from k kept entries per row (``example`` maps rows to rows of ``x``; default the same)."""
    width = weight.shape[0]
    if indices.numel() >= width:
        # Together the rows keep (nearly) every unit: the gradient is dense-shaped.
        slot = torch.arange(width, device=indices.device)
        return kernels.kept_t_times_input(indices, values, x, slot, width, example)
    # Few entries: only the union of their units gets a gradient row; compute just those rows.
    union, slot = kernels.kept_units(indices, width)
    return row_sparse_grad(weight, union, kernels.kept_t_times_input(indices, values, x, slot, len(union), example))


def rule_weight_grad(rule: Rule, weight: Tensor, x: Tensor, dy: Tensor, dy_sum: Tensor | None, indices: Tensor,
                     values: Tensor, example: Tensor | None = None, into: Tensor | None = None) -> Tensor:
    """dL/dW of ``y = x W^T`` under a per-example rule, from the rule's kept entries of dy.

    (indices, values): the top-k for ``topk`` and ``centred``, an unbiased sample (:func:`sample_kept`) for the
    ``unbiased`` rules. ``topk`` and ``unbiased``: S^T x. ``centred`` and ``unbiased_centred``: the same plus the
    exact rank-one mean term (:func:`kernels.centred_t_times_input`; needs ``dy_sum``, dy's column sums). ``dense_dw``: the
    exact dy^T x (an ablation: no saving). ``example`` maps rows of dy to rows of x (default: the same).
    ``into`` (the centred rules only): a tensor the result is added to in place, and returned.
    """
    if into is not None and rule not in CENTRED_RULES:
        raise ValueError(f"only the centred rules add into a given tensor, not {rule!r}")
    if rule == "dense_dw":
        return dy.t() @ (x if example is None else x.index_select(0, example))
    if rule in CENTRED_RULES:
        return kernels.centred_t_times_input(indices, values, x, dy_sum, example, into)
    return example_weight_grad(weight, x, indices, values, example)


def sample_uniforms(dy: Tensor, generator: torch.Generator | None) -> Tensor:
    """The one uniform per row of dy that an unbiased sample (:func:`kernels.sample_rows`) draws with."""
    return torch.rand(dy.shape[0], generator=generator, dtype=torch.float64, device=dy.device)


def sample_kept(dy: Tensor, indices: Tensor, values: Tensor, generator: torch.Generator | None
                ) -> tuple[Tensor, Tensor]:
    """An unbiased k-entry sample of each row of dy given its top-k (:func:`kernels.sample_rows`)."""
    return kernels.sample_rows(dy, indices, values, sample_uniforms(dy, generator))


def row_sparse_grad(weight: Tensor, rows: Tensor, values: Tensor) -> Tensor:
    """The weight gradient when only ``rows`` are non-zero, without a full-width zero fill when possible.

    When the parameter already holds a dense ``.grad`` (optimizer.zero_grad(set_to_none=False)), autograd
    adds a sparse gradient into it in place, touching only those rows. Otherwise it would store the sparse
    tensor as ``.grad``, which most optimizers reject, so a dense gradient is built instead.
    """
    if weight.grad is not None and weight.grad.layout == torch.strided:
        return torch.sparse_coo_tensor(rows.unsqueeze(0), values, weight.shape, check_invariants=False)
    return values.new_zeros(weight.shape).index_copy_(0, rows, values)


def bias_grad(dy: Tensor, kept: Tensor, indices: Tensor, mode: BiasGrad) -> Tensor:
    """``dense``: the full dy's sum (the authors' code); ``kept``: only the kept entries'.

    ``indices`` is (k,) shared by every row of ``kept`` (rows, k), or (rows, k) per row.
    """
    if mode == "dense":
        return dy.sum(0)
    return kept_bias_grad(kept, indices, dy.shape[1])


def kept_bias_grad(kept: Tensor, indices: Tensor, width: int) -> Tensor:
    """The bias gradient of the kept entries only (``bias_grad="kept"``), shapes as in :func:`bias_grad`."""
    grad = kept.new_zeros(width)
    if indices.dim() == 1:
        return grad.index_copy_(0, indices, kept.sum(0))
    return grad.index_add_(0, indices.reshape(-1), kept.reshape(-1))


def clock(like: Tensor) -> float:
    """Wall time, after the device's queued work has finished, so that GPU timings are real."""
    if like.is_cuda:
        torch.cuda.synchronize(like.device)
    return time.perf_counter()
