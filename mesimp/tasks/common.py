"""What every task does to its model before training: init, and meProp on the chosen linear layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from mesimp.config import Init, TrainConfig, effective_rule
from mesimp.data.paths import resolve_data_root
from mesimp.data.treebank import SPLITS, split_files
from mesimp.engine.trainer import TrainTask
from mesimp.errors import UserError
from mesimp.nn import MePropLSTM, convert_to_meprop, k_for_width
from mesimp.nn.mlp import init_like_authors
from mesimp.simplify import UnitGroup


@dataclass
class BuiltTask:
    task: TrainTask
    tracked_layers: set[str]  # the layers meProp applies to: their update ratio is reported
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    unit_groups: Callable[[], list[UnitGroup]] | None = None  # meSimp's view of the model; None: not supported
    original_model: Callable[[], nn.Module] | None = None  # a fresh model at the configured widths (decode timing)

    @property
    def hidden_dims(self) -> list[int]:
        return list(self.task.model.hidden_dims)


def prepare_model(cfg: TrainConfig, task: TrainTask, model: nn.Module,
                  output_layers: tuple[str, ...] = ("output",)) -> BuiltTask:
    """Init ``model``, make every linear layer a MePropLinear, and set meProp on every MePropLSTM.

    Layers meProp does not apply to (the output layers unless ``meprop.output_layer``) become dense
    MePropLinear (k=None), so the backward of every linear map is timed by the same code.
    """
    if cfg.model.init == Init.authors:
        init_like_authors(model)
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    layer_kwargs = dict(scope=cfg.meprop.scope.value, select=cfg.meprop.select.value,
                        bias_grad=cfg.meprop.bias_grad.value, rule=effective_rule(cfg).value,
                        generator=generator)
    dense = [] if cfg.meprop.output_layer else list(output_layers)
    tracked = convert_to_meprop(model, cfg.k, k_ratio=cfg.k_ratio, exclude=dense, **layer_kwargs)
    if dense:
        convert_to_meprop(model, None, exclude=tracked, **layer_kwargs)
    for name, module in model.named_modules():
        if isinstance(module, MePropLSTM):
            for key, value in layer_kwargs.items():
                setattr(module, key, value)
            module.gates = cfg.meprop.gates.value
            module.k = k_for_width(module.ranked_width, cfg.k, cfg.k_ratio)
            tracked.append(name)
    widths = [ranked_width(model.get_submodule(name)) for name in tracked]
    if cfg.k is not None and cfg.k > max(widths):
        raise UserError(f"k={cfg.k} exceeds the widest meProp layer ({max(widths)}); use k=null for full backprop")
    return BuiltTask(task, set(tracked), {"meprop": generator})


def ranked_width(layer: nn.Module) -> int:
    """How many entries of a meProp layer's output gradient its top-k ranks."""
    return layer.ranked_width if isinstance(layer, MePropLSTM) else layer.out_features


def treebank_data_files(cfg: TrainConfig, kind: str) -> list[Path]:
    """The files a treebank task reads, train, dev then test (a run's identity, mesimp/engine/rundir.py)."""
    files = split_files(cfg.data.name, resolve_data_root(cfg.data.root), cfg.data.train, cfg.data.dev, cfg.data.test,
                        kind=kind)
    return [path for split in SPLITS for path in files[split]]
