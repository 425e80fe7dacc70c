"""Dependency parsing: treebank -> vocabularies -> oracle transitions -> the MLP parser; batched greedy decoding.

Training examples are the static arc-standard oracle's (configuration, transition) pairs of every projective
training sentence (non-projective ones cannot be produced by arc-standard: they are skipped and counted).
Sentences whose heads are not a tree stop the run, or with ``data.skip_bad_trees`` are dropped from every split
(``mesimp.data.treebank.load_splits``).
Evaluation parses every dev/test sentence, all sentences in lockstep, and scores UAS and LAS in percent over
the non-punctuation tokens (``mesimp.data.treebank.punct_mask``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mesimp.config import TrainConfig
from mesimp.data.paths import resolve_data_root
from mesimp.data.treebank import Sentence, is_projective, load_splits, punct_mask
from mesimp.data.vocab import NULL, ROOT, Fields, Vocab
from mesimp.engine.device import resolve_device
from mesimp.errors import DataError, UserError
from mesimp.nn.mlp import mlp_unit_groups
from mesimp.tasks.common import BuiltTask, init_word_vectors, prepare_model, to_device, treebank_data_files
from mesimp.tasks.parse.arcstandard import greedy_decode, oracle_dataset
from mesimp.tasks.parse.model import ParserModel

log = logging.getLogger(__name__)


@dataclass
class Vocabs:
    fields: Fields
    words: Vocab
    tags: Vocab
    labels: Vocab  # real labels 0..L-1, then NULL (the label feature of a missing position)

    @property
    def num_labels(self) -> int:
        return len(self.labels) - 1

    def nulls(self) -> dict[str, int]:
        return {"null_word": self.words[NULL], "null_tag": self.tags[NULL], "null_label": self.labels[NULL]}


def build_vocabs(train: list[Sentence], cfg: TrainConfig) -> Vocabs:
    fields = Fields(cfg.data.lowercase, cfg.data.tagset, cfg.data.label_subtypes)
    counts = Counter(fields.word(w) for s in train for w in s.words)
    words = sorted(w for w, n in counts.items() if n >= cfg.data.word_min_count)
    tags = sorted({t for s in train for t in fields.tags(s)})
    labels = sorted({label for s in train for label in fields.labels(s)})
    return Vocabs(fields, Vocab(words), Vocab(tags), Vocab([*labels, NULL], specials=()))


@dataclass
class Encoded:
    """Sentences as padded tensors; position 0 is the root."""

    words: Tensor
    tags: Tensor
    lengths: Tensor
    heads: Tensor
    labels: Tensor
    scored: Tensor  # True for tokens that count in UAS/LAS (not punctuation, not root, not padding)

    def __len__(self) -> int:
        return len(self.lengths)


def encode(sentences: list[Sentence], vocabs: Vocabs) -> Encoded:
    size = (len(sentences), 1 + max((len(s.words) for s in sentences), default=0))
    words = torch.full(size, vocabs.words[NULL], dtype=torch.long)
    tags = torch.full(size, vocabs.tags[NULL], dtype=torch.long)
    heads = torch.zeros(size, dtype=torch.long)
    labels = torch.zeros(size, dtype=torch.long)
    scored = torch.zeros(size, dtype=torch.bool)
    words[:, 0], tags[:, 0] = vocabs.words[ROOT], vocabs.tags[ROOT]
    for i, s in enumerate(sentences):
        n = len(s.words)
        words[i, 1 : n + 1] = torch.tensor([vocabs.words[vocabs.fields.word(w)] for w in s.words])
        tags[i, 1 : n + 1] = torch.tensor([vocabs.tags[t] for t in vocabs.fields.tags(s)])
        if s.heads is not None:  # a sentence to parse (mesimp.predict) may come without a tree
            heads[i, 1 : n + 1] = torch.tensor(s.heads)
            labels[i, 1 : n + 1] = torch.tensor([vocabs.labels[label] for label in vocabs.fields.labels(s)])
        scored[i, 1 : n + 1] = ~torch.tensor(punct_mask(s))
    lengths = torch.tensor([len(s.words) for s in sentences], dtype=torch.long)
    return Encoded(words, tags, lengths, heads, labels, scored)


class ParseTask:
    def __init__(self, model: ParserModel, features: Tensor, transitions: Tensor, splits: dict[str, Encoded],
                 vocabs: Vocabs, labeled: bool) -> None:
        self.model = model
        self.features = features
        self.transitions = transitions
        self.splits = splits
        self.vocabs = vocabs
        self.labeled = labeled
        self.train_size = len(transitions)
        self.last_details: dict = {}

    def train_batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        return self.features[indices], self.transitions[indices]

    def loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        features, transitions = batch
        return F.cross_entropy(self.model(features), transitions)

    @torch.no_grad()
    def parse(self, data: Encoded) -> tuple[Tensor, Tensor]:
        self.model.eval()
        try:
            return greedy_decode(self.model, data.words, data.tags, data.lengths, self.vocabs.num_labels,
                                 **self.vocabs.nulls())
        finally:
            self.model.train()

    def evaluate(self, split: str) -> float:
        """UAS in percent; LAS and parsing speed go to ``last_details``."""
        data = self.splits[split]
        start = time.perf_counter()
        heads, labels = self.parse(data)
        seconds = time.perf_counter() - start
        scored = data.scored
        n = max(1, int(scored.sum()))
        right_head = (heads == data.heads) & scored
        uas = 100.0 * int(right_head.sum()) / n
        las = 100.0 * int((right_head & (labels == data.labels)).sum()) / n
        self.last_details = {"las": las if self.labeled else None, "sents_per_s": len(data) / seconds}
        return uas


def load_data(cfg: TrainConfig) -> tuple[dict[str, list[Sentence]], list[Sentence]]:
    """Every split (train cut to ``data.train_limit``) and the projective training sentences: the parser learns
    from them and its vocabularies are theirs (``mesimp.export`` rebuilds them from a run's config this way)."""
    if cfg.data.name is None and not (cfg.data.train and cfg.data.dev and cfg.data.test):
        raise UserError("task=parse needs data.name or all of data.train, data.dev, data.test")
    sentences = load_splits(cfg.data.name, resolve_data_root(cfg.data.root), train=cfg.data.train,
                            dev=cfg.data.dev, test=cfg.data.test, skip_bad_trees=cfg.data.skip_bad_trees)
    sentences["train"] = train = sentences["train"][: cfg.data.train_limit]
    projective = [s for s in train if is_projective(s.heads)]
    log.info("parse: %d training sentences, %d non-projective skipped in training (all are evaluated)",
             len(train), len(train) - len(projective))
    if not projective:
        raise DataError(f"{cfg.data.train or cfg.data.name}: none of the {len(train)} training sentences is "
                        "projective, and arc-standard learns from projective trees only")
    return sentences, projective


def build(cfg: TrainConfig) -> BuiltTask:
    sentences, projective = load_data(cfg)
    vocabs = build_vocabs(projective, cfg)
    gold = encode(projective, vocabs)
    features, transitions = oracle_dataset(gold.words, gold.tags, gold.lengths, gold.heads, gold.labels,
                                           vocabs.num_labels, **vocabs.nulls())
    labeled = all(s.labels is not None for s in sentences["train"])
    model = ParserModel(len(vocabs.words), len(vocabs.tags), len(vocabs.labels), 1 + 2 * vocabs.num_labels,
                        list(cfg.model.hidden), cfg.model.embedding_dim, cfg.model.dropout)
    init_word_vectors(cfg, model.words, vocabs.words)
    device = resolve_device(cfg.device.value)
    splits = {split: to_device(encode(sentences[split], vocabs), device) for split in ("dev", "test")}
    log.info("parse: %d words, %d tags, %d labels; %d training transitions", len(vocabs.words), len(vocabs.tags),
             vocabs.num_labels, len(transitions))
    task = ParseTask(model, features.to(device), transitions.to(device), splits, vocabs, labeled)
    built = prepare_model(cfg, task, model, output_layers=("mlp.output",))
    built.unit_groups = lambda: mlp_unit_groups(model.mlp)
    built.original_model = lambda: ParserModel(len(vocabs.words), len(vocabs.tags), len(vocabs.labels),
                                               1 + 2 * vocabs.num_labels, list(cfg.model.hidden),
                                               cfg.model.embedding_dim)
    return built


def data_files(cfg: TrainConfig) -> list[Path]:
    return treebank_data_files(cfg, kind="dependency")
