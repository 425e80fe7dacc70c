"""What every task does to its model before training: init, meProp on the chosen linear layers, the device."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import torch
from torch import Tensor, nn

from mesimp.config import Init, TrainConfig, effective_rule
from mesimp.data.embeddings import read_vectors, vectors_file
from mesimp.data.paths import resolve_data_root
from mesimp.data.treebank import SPLITS, split_files
from mesimp.data.vocab import NULL, ROOT, UNK, Vocab
from mesimp.engine.device import resolve_device
from mesimp.engine.trainer import TrainTask
from mesimp.errors import UserError
from mesimp.nn import MePropLSTM, convert_to_meprop, k_for_width
from mesimp.nn.mlp import init_like_authors
from mesimp.simplify import UnitGroup

log = logging.getLogger(__name__)
Data = TypeVar("Data")


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
    """Init ``model``, make every linear layer a MePropLinear, set meProp on every MePropLSTM, and move the model
    to ``cfg.device`` (the task's tensors are the task's to move: :func:`to_device`).

    Layers meProp does not apply to (the output layers unless ``meprop.output_layer``) become dense
    MePropLinear (k=None), so the backward of every linear map is timed by the same code.
    """
    device = resolve_device(cfg.device.value)
    if cfg.model.init == Init.authors:
        init_like_authors(model)
    # the random draws of meProp's random and sampled rules come from the device they run on
    generator = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    layer_kwargs = dict(scope=cfg.meprop.scope.value, select=cfg.meprop.select.value,
                        bias_grad=cfg.meprop.bias_grad.value, rule=effective_rule(cfg).value,
                        generator=generator)
    dense = [] if cfg.meprop.output_layer else list(output_layers)
    # the training loop reads .grad after backward(): the centred rules may add into it themselves
    tracked = convert_to_meprop(model, cfg.k, k_ratio=cfg.k_ratio, exclude=dense, grad_in_place=True,
                                **layer_kwargs)
    if dense:
        convert_to_meprop(model, None, exclude=tracked, **layer_kwargs)
    for name, module in model.named_modules():
        if isinstance(module, MePropLSTM):
            for key, value in layer_kwargs.items():
                setattr(module, key, value)
            module.gates = cfg.meprop.gates.value
            module.input_grad = cfg.meprop.input_grad.value
            module.k = k_for_width(module.ranked_width, cfg.k, cfg.k_ratio)
            tracked.append(name)
    widths = [ranked_width(model.get_submodule(name)) for name in tracked]
    if cfg.k is not None and cfg.k > max(widths):
        raise UserError(f"k={cfg.k} exceeds the widest meProp layer ({max(widths)}); use k=null for full backprop")
    model.to(device)  # initialised on the CPU: a run starts from the same weights on any device
    return BuiltTask(task, set(tracked), {"meprop": generator})


def to_device(data: Data, device: torch.device, *, keep_on_cpu: tuple[str, ...] = ()) -> Data:
    """A copy of the dataclass ``data`` with its tensors on ``device``, but for the fields named in ``keep_on_cpu``."""
    moved = {item.name: getattr(data, item.name).to(device) for item in dataclasses.fields(data)
             if item.name not in keep_on_cpu and isinstance(getattr(data, item.name), Tensor)}
    return dataclasses.replace(data, **moved)


def init_word_vectors(cfg: TrainConfig, table: nn.Embedding, words: Vocab) -> None:
    """Start the rows of the vocabulary's words from ``model.pretrained_embeddings``, when set: the vector of the
    word as the vocabulary has it, else of its lowercase (a lowercased file, data.lowercase=false)."""
    if cfg.model.pretrained_embeddings is None:
        return
    path = vectors_file(cfg.model.pretrained_embeddings)
    vocabulary = [word for word in words.itos if word not in (NULL, UNK, ROOT)]
    found = read_vectors(path, {*vocabulary, *(word.lower() for word in vocabulary)}, table.embedding_dim)
    rows = {words.stoi[word]: found.get(word, found.get(word.lower())) for word in vocabulary}
    rows = {row: vector for row, vector in rows.items() if vector is not None}
    if rows:
        with torch.no_grad():
            table.weight[list(rows)] = torch.stack(list(rows.values())).to(table.weight.dtype)
    log.info("pretrained embeddings: %s of %s vocabulary words found in %s", f"{len(rows):,}", f"{len(vocabulary):,}",
             path)


def ranked_width(layer: nn.Module) -> int:
    """How many entries of a meProp layer's output gradient its top-k ranks."""
    return layer.ranked_width if isinstance(layer, MePropLSTM) else layer.out_features


def treebank_data_files(cfg: TrainConfig, kind: str) -> list[Path]:
    """The files a treebank task reads, train, dev then test, then the pretrained word vectors if any (a run's
    identity, mesimp/engine/rundir.py)."""
    files = split_files(cfg.data.name, resolve_data_root(cfg.data.root), cfg.data.train, cfg.data.dev, cfg.data.test,
                        kind=kind)
    vectors = [vectors_file(cfg.model.pretrained_embeddings)] if cfg.model.pretrained_embeddings else []
    return [path for split in SPLITS for path in files[split]] + vectors
