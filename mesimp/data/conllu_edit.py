"""Predictions written into CoNLL-U by editing columns of the input's own lines: comments, multiword tokens, empty
nodes, blank lines and every column not predicted stay as they were, line ends included."""

from __future__ import annotations

import re
from collections.abc import Iterable

ID, FORM, LEMMA, UPOS, XPOS, FEATS, HEAD, DEPREL, DEPS, MISC = range(10)

_WORD_ID = re.compile(r"[0-9]+")  # not "3-4" (multiword token) nor "3.1" (empty node): what read_conll keeps


def fill_columns(text: str, values: Iterable[dict[int, str]]) -> str:
    """``text`` with the columns of its n-th word line set from the n-th entry of ``values`` (column -> value).

    ``text`` must be what ``mesimp.data.treebank.read_conll`` read without error, and ``values`` hold one entry per
    word it read, in file order.
    """
    entries = iter(values)
    lines = text.split("\n")  # as the reader splits: a form may hold U+2028 and the like
    for number, line in enumerate(lines):
        body = line.rstrip("\r")
        cols = body.split("\t")
        if not body.strip(" ") or body.startswith("#") or not _WORD_ID.fullmatch(cols[0]):
            continue
        entry = next(entries, None)
        if entry is None:
            raise ValueError(f"fewer values than words: none for line {number + 1}")
        for column, value in entry.items():
            cols[column] = value
        lines[number] = "\t".join(cols) + line[len(body):]
    if next(entries, None) is not None:
        raise ValueError("more values than words")
    return "\n".join(lines)
