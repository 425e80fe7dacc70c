"""A trained parser as one file (``python -m mesimp.export``), and the parser rebuilt from it (``mesimp.predict``).

``torch.load(FILE, weights_only=True)`` gives a dict:

- ``format``: ``"mesimp-parser-v1"``
- ``config``: ``task`` ("parse"); ``lowercase`` (word features lowercased); ``tagset`` ("xpos" or "upos": the POS
  column the parser reads); ``label_subtypes`` (``nmod:poss`` kept, or cut to ``nmod``); ``embedding_dim``;
  ``hidden``: the MLP's widths as trained, meSimp's compact ones included (read from the weights)
- ``vocab``: ``words``, ``tags``, ``labels``, each a list of strings whose positions are their ids: words and tags
  begin with ``<null> <unk> <root>``; labels end with ``<null>``, the label feature of a missing position
- ``state_dict``: :class:`mesimp.tasks.parse.model.ParserModel`'s: ``words.weight``, ``tags.weight``,
  ``labels.weight``, ``mlp.hidden.N.weight``/``.bias``, ``mlp.output.weight``/``.bias``

The features and the transition system are mesimp's, so the file keeps mesimp's module layout:
``load(data, source)`` rebuilds the parser and its ``annotate(sentences)`` parses.
"""

from __future__ import annotations

from itertools import count, takewhile
from pathlib import Path

import torch

from mesimp.config import TagSet, TrainConfig
from mesimp.data.conllu_edit import DEPREL, HEAD
from mesimp.data.treebank import Sentence
from mesimp.data.vocab import Fields, Vocab
from mesimp.model_file import load_weights
from mesimp.tasks.parse.model import ParserModel
from mesimp.tasks.common import to_device
from mesimp.tasks.parse.pipeline import ParseTask, Vocabs, build_vocabs, encode, load_data

TASK = "parse"
FORMAT = "mesimp-parser-v1"
KIND = "dependency"  # what the training data is read for (mesimp.data.treebank.split_files)
# UD's rule (its validator's level 2): DEPREL is "root" exactly where HEAD is 0
ROOT_LABEL, UNSPECIFIED_LABEL = "root", "dep"


def pack(cfg: TrainConfig, state: dict) -> dict:
    """The file's contents for a run of config ``cfg`` and final weights ``state``; the vocabularies are rebuilt
    from the training data, as training built them."""
    _, projective = load_data(cfg)
    vocabs = build_vocabs(projective, cfg)
    hidden_keys = takewhile(state.__contains__, (f"mlp.hidden.{i}.weight" for i in count()))
    config = {"task": TASK, "lowercase": cfg.data.lowercase, "tagset": cfg.data.tagset.value,
              "label_subtypes": cfg.data.label_subtypes, "embedding_dim": int(state["words.weight"].shape[1]),
              "hidden": [int(state[key].shape[0]) for key in hidden_keys]}
    vocab = {"words": vocabs.words.itos, "tags": vocabs.tags.itos, "labels": vocabs.labels.itos}
    return {"format": FORMAT, "config": config, "vocab": vocab, "state_dict": state}


def describe(data: dict) -> str:
    config, vocab = data["config"], data["vocab"]
    return (f"parser, hidden {'-'.join(map(str, config['hidden']))}, {len(vocab['words']):,} words, "
            f"{len(vocab['tags'])} tags, {len(vocab['labels']) - 1} labels")


class Parser:
    """Greedy arc-standard parsing with a trained model: the training task's own decoder."""

    def __init__(self, model: ParserModel, vocabs: Vocabs) -> None:
        self.vocabs = vocabs
        self.task = ParseTask(model, features=None, transitions=torch.zeros(0), splits={}, vocabs=vocabs,
                              labeled=True)

    def annotate(self, sentences: list[Sentence]) -> list[list[dict[int, str]]]:
        """HEAD and DEPREL of every word of every sentence; the sentences' own heads and labels are not read."""
        device = next(self.task.model.parameters()).device  # where predict put the model
        heads, labels = self.task.parse(to_device(encode(sentences, self.vocabs), device))
        names = self.vocabs.labels.itos
        return [[{HEAD: str(head), DEPREL: _ud_label(head, names[label])}
                 for head, label in zip(heads[i, 1 : len(s) + 1].tolist(), labels[i, 1 : len(s) + 1].tolist())]
                for i, s in enumerate(sentences)]


def _ud_label(head: int, label: str) -> str:
    """The decoder picks an arc and its label in one transition, so a weak model (or one trained without labels)
    may put "root" elsewhere or another label on the root arc: the label follows the head. Heads are untouched."""
    if head == 0:
        return ROOT_LABEL
    return UNSPECIFIED_LABEL if label == ROOT_LABEL else label


def load(data: dict, source: Path | str) -> Parser:
    """The parser of a file's contents (``pack``'s); ``source`` names it in messages."""
    config, vocab = data["config"], data["vocab"]
    fields = Fields(config["lowercase"], TagSet(config["tagset"]), config["label_subtypes"])
    # specials=(): the lists hold them already, in place
    vocabs = Vocabs(fields, *(Vocab(vocab[name], specials=()) for name in ("words", "tags", "labels")))
    model = ParserModel(len(vocabs.words), len(vocabs.tags), len(vocabs.labels), 1 + 2 * vocabs.num_labels,
                        list(config["hidden"]), config["embedding_dim"])
    load_weights(model, data["state_dict"], source)
    return Parser(model, vocabs)
