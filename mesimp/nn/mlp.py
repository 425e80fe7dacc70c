"""A plain multilayer perceptron: hidden linear layers with ReLU (and optional dropout), then an output layer.

Layers are ``hidden.0``, ``hidden.1``, ... and ``output``, so meProp conversion and meSimp address them by
name. It is an ordinary ``nn.Module`` with a standard state_dict.
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from mesimp.simplify.units import ParamSlice, UnitGroup


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, dropout: float = 0.0) -> None:
        super().__init__()
        widths = [in_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.output = nn.Linear(widths[-1], out_features)
        self.dropout = nn.Dropout(dropout)

    @property
    def hidden_dims(self) -> list[int]:
        return [layer.out_features for layer in self.hidden]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.hidden:
            x = self.dropout(layer(x).relu())
        return self.output(x)


def init_like_authors(model: nn.Module) -> None:
    """The authors' C# "GlorotNormalInit": weights ~ N(0, 6/(fan_in+fan_out)), biases 0."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=math.sqrt(6.0 / (module.in_features + module.out_features)))
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def mlp_unit_groups(model: MLP) -> list[UnitGroup]:
    """meSimp's view of an MLP: hidden unit j of layer i is row j of ``hidden.i`` and column j of the next layer."""
    consumers = [*model.hidden[1:], model.output]
    return [
        UnitGroup(f"hidden.{i}", layer, [ParamSlice(layer, "weight", 0), ParamSlice(layer, "bias", 0),
                                         ParamSlice(consumer, "weight", 1)])
        for i, (layer, consumer) in enumerate(zip(model.hidden, consumers))
    ]
