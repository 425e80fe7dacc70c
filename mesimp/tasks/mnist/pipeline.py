"""MNIST (or another MNIST-format data set, data.name): data split as in the paper, the MLP, minibatches, loss and
accuracy."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mesimp.config import TrainConfig
from mesimp.data.mnist import NAMES, MnistSplits, idx_dataset, load_mnist, mnist_files
from mesimp.data.paths import resolve_data_root
from mesimp.engine.device import resolve_device
from mesimp.nn.mlp import MLP, mlp_unit_groups
from mesimp.tasks.common import BuiltTask, prepare_model, to_device

EVAL_BATCH = 2000


class MnistTask:
    def __init__(self, splits: MnistSplits, model: MLP) -> None:
        self.splits = splits
        self.model = model
        self.train_size = len(splits.train_y)

    def train_batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        return self.splits.train_x[indices], self.splits.train_y[indices]

    def loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        images, labels = batch
        return F.cross_entropy(self.model(images), labels)

    @torch.no_grad()
    def evaluate(self, split: str) -> float:
        images, labels = getattr(self.splits, f"{split}_x"), getattr(self.splits, f"{split}_y")
        self.model.eval()
        correct = sum(
            (self.model(x).argmax(1) == y).sum().item()
            for x, y in zip(images.split(EVAL_BATCH), labels.split(EVAL_BATCH))
        )
        self.model.train()
        return 100.0 * correct / len(labels)


def build(cfg: TrainConfig) -> BuiltTask:
    splits = load_mnist(resolve_data_root(cfg.data.root), idx_dataset(cfg.data.name),
                        train_limit=cfg.data.train_limit, fetch=cfg.data.fetch)
    # input and output widths from the data: 784 and 10 for MNIST, whatever an unverified data set holds
    widths = splits.train_x.shape[1], cfg.model.hidden, splits.classes
    model = MLP(*widths, dropout=cfg.model.dropout)
    built = prepare_model(cfg, MnistTask(to_device(splits, resolve_device(cfg.device.value)), model), model)
    built.unit_groups = lambda: mlp_unit_groups(model)
    built.original_model = lambda: MLP(*widths)
    return built


def data_files(cfg: TrainConfig) -> list[Path]:
    """The files a run reads (its identity, mesimp/engine/rundir.py)."""
    files = mnist_files(resolve_data_root(cfg.data.root), idx_dataset(cfg.data.name), fetch=cfg.data.fetch)
    return [files[name] for name in NAMES]
