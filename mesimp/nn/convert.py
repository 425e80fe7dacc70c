"""Swap the ``nn.Linear`` modules of any model for :class:`MePropLinear`."""

from __future__ import annotations

from typing import Iterable

from torch import nn

from mesimp.nn.meprop import MePropLinear


def k_for_width(width: int, k: int | None = None, k_ratio: float | None = None) -> int | None:
    """The k of a layer with ``width`` outputs, from an absolute k or a fraction of the width."""
    if k is not None and k_ratio is not None:
        raise ValueError("give k or k_ratio, not both")
    if k_ratio is None:
        return k
    if not 0.0 < k_ratio <= 1.0:
        raise ValueError(f"k_ratio must be in (0, 1], got {k_ratio}")
    return max(1, round(k_ratio * width))


def convert_to_meprop(
    model: nn.Module,
    k: int | None = None,
    *,
    k_ratio: float | None = None,
    exclude: Iterable[str] = (),
    **layer_kwargs,
) -> list[str]:
    """Replace, in place, every ``nn.Linear`` of ``model`` whose qualified name is not in ``exclude``.

    The new layers share the old parameter tensors, so a state_dict loads either way; build the
    optimizer after converting. Layers that already are ``MePropLinear`` get the new k and settings.
    Returns the qualified names of the converted layers.
    """
    excluded = set(exclude)
    linear_names = {name for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    unknown = excluded - linear_names
    if unknown:
        raise ValueError(f"exclude names no nn.Linear of the model: {sorted(unknown)}")
    converted = []
    for name in sorted(linear_names - excluded):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old = getattr(parent, attr)
        layer_k = k_for_width(old.out_features, k, k_ratio)
        setattr(parent, attr, MePropLinear.from_linear(old, layer_k, **layer_kwargs))
        converted.append(name)
    return converted
