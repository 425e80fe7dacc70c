"""Gradients of a linear map ``y = x W^T + b`` from the kept entries of ``dL/dy`` (shared by meProp's layers).

The kept entries come as three flat tensors: output unit, example (row of ``x``) and value. Both products
then cost (kept entries) / (rows x width) of the dense ones.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from torch import Tensor

BiasGrad = Literal["dense", "kept"]


def kept_entries_t(units: Tensor, examples: Tensor, values: Tensor, rows: int, width: int) -> Tensor:
    """The kept entries of dy as a sparse (width, rows) matrix.

    Built transposed: PyTorch's CPU sparse products are faster this way round for both dL/dx and dL/dW.
    """
    return torch.sparse_coo_tensor(torch.stack((units, examples)), values, (width, rows), check_invariants=False)


def example_weight_grad(weight: Tensor, x: Tensor, kept_t: Tensor) -> Tensor:
    """dL/dW = dy^T x from the kept entries ``kept_t`` (width, rows)."""
    width, rows = kept_t.shape
    if kept_t._nnz() >= width:
        # Together the examples keep (nearly) every unit: the gradient is dense-shaped, one product.
        return torch.sparse.mm(kept_t, x)
    # Few entries: only the union of their units gets a gradient row; compute just those rows.
    units, examples = kept_t._indices()
    union, slot = torch.unique(units, return_inverse=True)
    compact_t = torch.sparse_coo_tensor(torch.stack((slot, examples)), kept_t._values(), (union.shape[0], rows),
                                        check_invariants=False)
    return row_sparse_grad(weight, union, torch.sparse.mm(compact_t, x))


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
    grad = dy.new_zeros(dy.shape[1])
    if indices.dim() == 1:
        return grad.index_copy_(0, indices, kept.sum(0))
    return grad.index_add_(0, indices.reshape(-1), kept.reshape(-1))


def clock(like: Tensor) -> float:
    """Wall time, after the device's queued work has finished, so that GPU timings are real."""
    if like.is_cuda:
        torch.cuda.synchronize(like.device)
    return time.perf_counter()
