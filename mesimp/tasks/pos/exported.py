"""A trained tagger as one file (``python -m mesimp.export``), and the tagger rebuilt from it (``mesimp.predict``).

``torch.load(FILE, weights_only=True)`` gives a dict:

- ``format``: ``"mesimp-tagger-v1"``
- ``config``: ``task`` ("pos"); ``lowercase`` (the word feature lowercased; digits are always 0); ``tagset``
  ("xpos" or "upos": the column it tags); ``word_dim``, ``feature_dim`` (embedding sizes); ``bidirectional``;
  ``hidden``: the LSTM width of each direction as trained, meSimp's compact ones included (read from the weights)
- ``vocab``: ``words``, ``tags``: lists of strings whose positions are their ids (words begin with ``<null>
  <unk>``); ``features``: for each of the 7 spelling features of ``mesimp.tasks.pos.features.FEATURES``, by
  name and in that order, its list of values (beginning with ``<null> <unk>``)
- ``state_dict``: :class:`mesimp.tasks.pos.model.Tagger`'s: ``words.weight``, ``features.N.weight``,
  ``lstms.D.weight_ih``/``weight_hh``/``bias`` (a MePropLSTM: torch's gate order i, f, g, o, one bias),
  ``output.D.weight`` (and ``output.0.bias``)

The spelling features are mesimp's, so the file keeps mesimp's module layout: ``Tagger.from_file(data, source)``
rebuilds the tagger and its ``annotate(sentences)`` tags.
"""

from __future__ import annotations

from itertools import count, takewhile
from pathlib import Path

import torch

from mesimp.config import TagSet, TrainConfig
from mesimp.data.conllu_edit import UPOS, XPOS
from mesimp.data.treebank import Sentence
from mesimp.data.vocab import Fields, Vocab
from mesimp.errors import UserError
from mesimp.model_file import load_weights
from mesimp.simplify.units import compact_group
from mesimp.tasks.pos import model as tagger_model
from mesimp.tasks.common import to_device
from mesimp.tasks.pos.features import FEATURES
from mesimp.tasks.pos.pipeline import PosTask, Vocabs, build_vocabs, encode, load_data

TASK = "pos"
FORMAT = "mesimp-tagger-v1"
KIND = "tags"  # what the training data is read for (mesimp.data.treebank.split_files)


def pack(cfg: TrainConfig, state: dict) -> dict:
    """The file's contents for a run of config ``cfg`` and final weights ``state``; the vocabularies are rebuilt
    from the training data, as training built them."""
    fields = Fields(cfg.data.lowercase, cfg.data.tagset)
    vocabs = build_vocabs(load_data(cfg)["train"], fields, cfg.data.word_min_count)
    directions = list(takewhile(state.__contains__, (f"lstms.{d}.weight_hh" for d in count())))
    config = {"task": TASK, "lowercase": cfg.data.lowercase, "tagset": cfg.data.tagset.value,
              "word_dim": int(state["words.weight"].shape[1]), "feature_dim": int(state["features.0.weight"].shape[1]),
              "bidirectional": len(directions) == 2, "hidden": [int(state[key].shape[1]) for key in directions]}
    vocab = {"words": vocabs.words.itos, "tags": vocabs.tags.itos,
             "features": {name: feature.itos for name, feature in zip(FEATURES, vocabs.features)}}
    return {"format": FORMAT, "config": config, "vocab": vocab, "state_dict": state}


def describe(data: dict) -> str:
    config, vocab = data["config"], data["vocab"]
    return (f"{'bidirectional ' if config['bidirectional'] else ''}tagger ({config['tagset']}), LSTM "
            f"{'+'.join(map(str, config['hidden']))}, {len(vocab['words']):,} words, {len(vocab['tags'])} tags")


class Tagger:
    """Tagging with a trained model: the training task's own prediction."""

    def __init__(self, model: tagger_model.Tagger, vocabs: Vocabs, fields: Fields) -> None:
        self.vocabs = vocabs
        self.fields = fields
        self.task = PosTask(model, train=encode([], vocabs, fields, gold=False), splits={})
        self.column = UPOS if fields.tagset == TagSet.upos else XPOS

    def annotate(self, sentences: list[Sentence]) -> list[list[dict[int, str]]]:
        """The tag of every word of every sentence, for the column of the model's tag set; tags are not read."""
        device = next(self.task.model.parameters()).device  # where predict put the model
        tags = self.task.predict(to_device(encode(sentences, self.vocabs, self.fields, gold=False), device,
                                           keep_on_cpu=("lengths",)))  # MePropLSTM takes lengths on the CPU
        names = self.vocabs.tags.itos
        return [[{self.column: names[tag]} for tag in tags[i, : len(s)].tolist()] for i, s in enumerate(sentences)]


def load(data: dict, source: Path | str) -> Tagger:
    """The tagger of a file's contents (``pack``'s); ``source`` names it in messages."""
    config, vocab = data["config"], data["vocab"]
    if list(vocab["features"]) != list(FEATURES):
        raise UserError(f"{source}: a tagger of the word features {list(vocab['features'])}; this mesimp "
                        f"computes {list(FEATURES)}")
    fields = Fields(config["lowercase"], TagSet(config["tagset"]))
    # specials=(): the lists hold them already, in place
    vocabs = Vocabs(Vocab(vocab["words"], specials=()),
                    [Vocab(vocab["features"][name], specials=()) for name in FEATURES],
                    Vocab(vocab["tags"], specials=()))
    hidden = list(config["hidden"])
    model = tagger_model.Tagger(len(vocabs.words), vocabs.feature_sizes, len(vocabs.tags), max(hidden),
                                config["word_dim"], config["feature_dim"], config["bidirectional"])
    # meSimp may leave the two directions different widths: cut each to its own, as resuming a run does
    for group, width in zip(tagger_model.tagger_unit_groups(model), hidden):
        if group.width != width:
            compact_group(group, torch.arange(width))
    load_weights(model, data["state_dict"], source)
    return Tagger(model, vocabs, fields)
