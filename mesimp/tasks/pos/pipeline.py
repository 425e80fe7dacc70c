"""POS tagging: treebank -> vocabularies -> padded id tensors -> the LSTM tagger; per-token accuracy.

Sentences are the examples (``batch_size`` counts sentences; the paper's is 1). A minibatch is cut to its
longest sentence and run as a shrinking batch, so padding costs nothing in the LSTM. The loss is the mean
cross-entropy over the minibatch's tokens. Evaluation tags every dev/test sentence in chunks of similar
lengths and scores accuracy over all tokens, punctuation included (the usual POS convention); a gold tag
never seen in training counts as an error.
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
from mesimp.data.treebank import Sentence, load_splits
from mesimp.data.vocab import NULL, UNK, Fields, Vocab
from mesimp.engine.device import resolve_device
from mesimp.errors import UserError
from mesimp.tasks.common import BuiltTask, init_word_vectors, prepare_model, to_device, treebank_data_files
from mesimp.tasks.pos.features import CLOSED, FEATURES, features_of, word_key
from mesimp.tasks.pos.model import Tagger, tagger_unit_groups

log = logging.getLogger(__name__)

PAD_TAG = -100  # cross_entropy's ignore_index
UNSEEN_TAG = -1  # a dev/test tag absent from training: never predicted, so always an error
EVAL_CHUNK = 256  # sentences per forward pass at evaluation


@dataclass
class Vocabs:
    words: Vocab
    features: list[Vocab]  # one per entry of FEATURES
    tags: Vocab

    @property
    def feature_sizes(self) -> list[int]:
        return [len(vocab) for vocab in self.features]


def build_vocabs(train: list[Sentence], fields: Fields, word_min_count: int) -> Vocabs:
    """Training words seen fewer than ``word_min_count`` times become the unknown word, so that its embedding
    is trained on rare words and stands for unseen ones at test time."""
    counts = Counter(word_key(w, fields.lowercase) for s in train for w in s.words)
    words = sorted(w for w, n in counts.items() if n >= word_min_count)
    forms = {w for s in train for w in s.words}
    values = [sorted(set(seen)) for seen in zip(*map(features_of, forms))] if forms else [[] for _ in FEATURES]
    features = [Vocab(list(CLOSED[name]) if name in CLOSED else seen, specials=(NULL, UNK))
                for name, seen in zip(FEATURES, values)]
    tags = sorted({t for s in train for t in fields.tags(s)})
    return Vocabs(Vocab(words, specials=(NULL, UNK)), features, Vocab(tags, specials=()))


@dataclass
class Encoded:
    """Sentences as padded, batch-major id tensors."""

    words: Tensor  # (S, T)
    features: Tensor  # (S, T, 7)
    tags: Tensor  # (S, T): PAD_TAG past the end, UNSEEN_TAG for tags not in the vocabulary
    lengths: Tensor  # (S,)

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Time-major tensors of the chosen sentences, cut to the longest of them."""
        lengths = self.lengths[indices]
        steps = int(lengths.max())
        return (self.words[indices, :steps].t(), self.features[indices, :steps].transpose(0, 1),
                self.tags[indices, :steps].t(), lengths)


def encode(sentences: list[Sentence], vocabs: Vocabs, fields: Fields, gold: bool = True) -> Encoded:
    """``gold=False``: sentences to tag (``mesimp.predict``), whose tags are not read (they may have none)."""
    size = (len(sentences), max((len(s) for s in sentences), default=0))
    words = torch.zeros(size, dtype=torch.long)  # NULL
    features = torch.zeros(*size, len(FEATURES), dtype=torch.long)
    tags = torch.full(size, PAD_TAG, dtype=torch.long)
    for i, s in enumerate(sentences):
        n = len(s)
        words[i, :n] = torch.tensor([vocabs.words[word_key(w, fields.lowercase)] for w in s.words])
        features[i, :n] = torch.tensor([[vocab[value] for vocab, value in zip(vocabs.features, features_of(w))]
                                        for w in s.words])
        if gold:
            tags[i, :n] = torch.tensor([vocabs.tags.stoi.get(t, UNSEEN_TAG) for t in fields.tags(s)])
    return Encoded(words, features, tags, torch.tensor([len(s) for s in sentences], dtype=torch.long))


class PosTask:
    def __init__(self, model: Tagger, train: Encoded, splits: dict[str, Encoded]) -> None:
        self.model = model
        self.train = train
        self.splits = splits
        self.train_size = len(train)
        self.last_details: dict = {}

    def train_batch(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.train.batch(indices)

    def loss(self, batch: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
        words, features, tags, lengths = batch
        scores = self.model(words, features, lengths)
        return F.cross_entropy(scores.flatten(0, 1), tags.flatten(), ignore_index=PAD_TAG)

    @torch.no_grad()
    def predict(self, data: Encoded) -> Tensor:
        """Predicted tag ids, (S, T) like ``data.tags``; chunks of similar lengths keep padding small."""
        self.model.eval()
        try:
            predicted = torch.zeros_like(data.tags)
            for chunk in torch.argsort(data.lengths, descending=True).split(EVAL_CHUNK):
                words, features, _, lengths = data.batch(chunk)
                predicted[chunk, : words.shape[0]] = self.model(words, features, lengths).argmax(-1).t()
            return predicted
        finally:
            self.model.train()

    def evaluate(self, split: str) -> float:
        """Per-token accuracy in percent; tagging speed goes to ``last_details``."""
        data = self.splits[split]
        start = time.perf_counter()
        predicted = self.predict(data)
        seconds = time.perf_counter() - start
        real = data.tags != PAD_TAG
        correct = int(((predicted == data.tags) & real).sum())
        self.last_details = {"sents_per_s": len(data) / seconds}
        return 100.0 * correct / max(1, int(real.sum()))


def load_data(cfg: TrainConfig) -> dict[str, list[Sentence]]:
    """Every split, train cut to ``data.train_limit``: the vocabularies are its (``mesimp.export`` rebuilds them
    from a run's config this way)."""
    if cfg.data.name is None and not (cfg.data.train and cfg.data.dev and cfg.data.test):
        raise UserError("task=pos needs data.name or all of data.train, data.dev, data.test")
    sentences = load_splits(cfg.data.name, resolve_data_root(cfg.data.root), train=cfg.data.train,
                            dev=cfg.data.dev, test=cfg.data.test, kind="tags")
    sentences["train"] = sentences["train"][: cfg.data.train_limit]
    return sentences


def build(cfg: TrainConfig) -> BuiltTask:
    if len(cfg.model.hidden) != 1:
        raise UserError(f"task=pos has one LSTM layer: model.hidden takes one width, got {list(cfg.model.hidden)}")
    sentences = load_data(cfg)
    fields = Fields(cfg.data.lowercase, cfg.data.tagset)
    train = sentences["train"]
    vocabs = build_vocabs(train, fields, cfg.data.word_min_count)
    log.info("pos: %d/%d/%d sentences; %d words, %d tags, feature vocabularies %s", len(train),
             len(sentences["dev"]), len(sentences["test"]), len(vocabs.words), len(vocabs.tags), vocabs.feature_sizes)

    def new_tagger() -> Tagger:
        return Tagger(len(vocabs.words), vocabs.feature_sizes, len(vocabs.tags), cfg.model.hidden[0],
                      cfg.model.embedding_dim, cfg.model.feature_dim, cfg.model.bidirectional, cfg.model.dropout)

    model = new_tagger()
    init_word_vectors(cfg, model.words, vocabs.words)
    device = resolve_device(cfg.device.value)

    def encoded(split: list[Sentence]) -> Encoded:  # MePropLSTM takes lengths on the CPU
        return to_device(encode(split, vocabs, fields), device, keep_on_cpu=("lengths",))

    splits = {split: encoded(sentences[split]) for split in ("dev", "test")}
    task = PosTask(model, encoded(train), splits)
    outputs = tuple(f"output.{d}" for d in range(len(model.output)))
    built = prepare_model(cfg, task, model, output_layers=outputs)
    built.unit_groups = lambda: tagger_unit_groups(model)
    built.original_model = new_tagger
    return built


def data_files(cfg: TrainConfig) -> list[Path]:
    return treebank_data_files(cfg, kind="tags")
