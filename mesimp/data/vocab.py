"""What the treebank tasks read from a sentence (word forms, POS tags, arc labels) and their string-to-id maps."""

from __future__ import annotations

from dataclasses import dataclass

from mesimp.config import TagSet
from mesimp.data.treebank import Sentence, strip_subtype
from mesimp.errors import UserError

NULL, UNK, ROOT = "<null>", "<unk>", "<root>"
UNLABELED = "dep"  # the single label of unlabeled treebanks (the WSJ sample's .dp files)


class Vocab:
    """Strings to ids; the special symbols come first. An unknown string maps to UNK when there is one."""

    def __init__(self, symbols: list[str], specials: tuple[str, ...] = (NULL, UNK, ROOT)) -> None:
        self.itos = [*specials, *[s for s in symbols if s not in specials]]
        self.stoi = {symbol: i for i, symbol in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def __getitem__(self, symbol: str) -> int:
        return self.stoi.get(symbol, self.stoi.get(UNK, 0))


@dataclass(frozen=True)
class Fields:
    """Which strings of a sentence a model reads: word forms, POS tags and arc labels, as configured."""

    lowercase: bool
    tagset: TagSet
    label_subtypes: bool = False

    def word(self, form: str) -> str:
        return form.lower() if self.lowercase else form

    def tags(self, sentence: Sentence) -> list[str]:
        if self.tagset == TagSet.upos:
            if sentence.upos is None:
                raise UserError(f"{sentence.source}: data.tagset=upos but this treebank has no universal tags")
            return sentence.upos
        return sentence.xpos

    def labels(self, sentence: Sentence) -> list[str]:
        if sentence.labels is None:
            return [UNLABELED] * len(sentence.words)
        return sentence.labels if self.label_subtypes else [strip_subtype(label) for label in sentence.labels]
