"""Which parameter slices make up each hidden unit, and how to cut units out of a model and its optimizer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ParamSlice:
    """Unit j owns index j of ``module.<name>`` along ``dim``.

    ``blocks > 1``: the parameter stacks ``blocks`` copies of the unit axis (an LSTM's four gates), and unit j
    owns indices ``b * width + j`` for every block b.
    """

    module: nn.Module
    name: str
    dim: int
    blocks: int = 1

    @property
    def param(self) -> nn.Parameter:
        return getattr(self.module, self.name)

    def index(self, keep: Tensor, width: int) -> Tensor:
        if self.blocks == 1:
            return keep
        return torch.cat([keep + block * width for block in range(self.blocks)])


@dataclass
class UnitGroup:
    """The hidden units of one layer: ``source`` reports which of them meProp kept; ``slices`` hold their weights.

    ``source`` is the layer whose outputs are these units (its kept-index reports measure activeness): its
    width is ``blocks`` times the number of units, and a unit's count is the sum over its blocks.
    """

    name: str
    source: nn.Linear
    slices: list[ParamSlice]
    blocks: int = 1

    @property
    def width(self) -> int:
        return self.source.out_features // self.blocks

    def unit_counts(self, source_counts: Tensor) -> Tensor:
        return source_counts.view(self.blocks, self.width).sum(0)


def compact_group(group: UnitGroup, keep: Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Keep only units ``keep`` (sorted indices): slice every parameter, and its optimizer state, for real.

    Parameters are replaced by new, smaller ``nn.Parameter`` s; the optimizer's param groups point to the new
    ones and every state tensor shaped like the parameter (Adam's moments, AdaGrad's sums, momentum) is
    sliced the same way, so training continues as if the removed units had never existed.
    """
    width = group.width
    touched: set[nn.Module] = set()
    for piece in group.slices:
        old = piece.param
        index = piece.index(keep, width).to(old.device)
        new = nn.Parameter(old.detach().index_select(piece.dim, index), requires_grad=old.requires_grad)
        if old.grad is not None:
            new.grad = old.grad.index_select(piece.dim, index)
        setattr(piece.module, piece.name, new)
        if optimizer is not None:
            _move_optimizer_state(optimizer, old, new, piece.dim, index)
        touched.add(piece.module)
    for module in touched:
        if isinstance(module, nn.Linear):
            module.out_features, module.in_features = module.weight.shape


def _move_optimizer_state(optimizer: torch.optim.Optimizer, old: Tensor, new: Tensor, dim: int, index: Tensor) -> None:
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if state is not None:
        optimizer.state[new] = {
            key: value.index_select(dim, index) if torch.is_tensor(value) and value.shape == old.shape else value
            for key, value in state.items()
        }
