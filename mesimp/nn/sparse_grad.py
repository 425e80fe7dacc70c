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
