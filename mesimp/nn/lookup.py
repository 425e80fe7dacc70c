"""An embedding lookup whose backward sums rows without sorting the ids first (see ``kernels.lookup_grad``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mesimp.nn import kernels


class _Lookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ids: Tensor, table: Tensor) -> Tensor:
        ctx.save_for_backward(ids)
        ctx.rows = table.shape[0]
        return F.embedding(ids, table)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        (ids,) = ctx.saved_tensors
        return None, kernels.lookup_grad(ids.reshape(-1), grad.reshape(ids.numel(), -1), ctx.rows)


def lookup(ids: Tensor, table: Tensor) -> Tensor:
    """``F.embedding(ids, table)``: the same values and the same (dense) gradient of ``table``."""
    if not (torch.is_grad_enabled() and table.requires_grad):
        return F.embedding(ids, table)
    return _Lookup.apply(ids, table)
