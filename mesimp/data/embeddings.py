"""Pretrained word vectors from a text file, for ``model.pretrained_embeddings``.

Two formats, told apart by the first line: word2vec's text format starts with ``COUNT DIM``, GloVe's has no such
line; then one ``word v1 ... vDIM`` per line, separated by spaces. The word is what precedes the last DIM fields,
so a word with spaces in it (GloVe's 840B vectors have a few) is read whole. Only the vectors of the words asked
for are kept (a vocabulary needs a small share of a large file); the numbers of the other lines are not parsed.
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from mesimp.errors import DataError


def vectors_file(path: str) -> Path:
    """The file named by ``model.pretrained_embeddings``; a DataError when there is none."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such file (model.pretrained_embeddings)")
    return file


def read_vectors(path: Path, wanted: set[str], dim: int) -> dict[str, Tensor]:
    """The vectors of the ``wanted`` words found in ``path`` (the first line of a word that occurs twice).

    DataError, naming FILE:LINE, for a line that is not a word and ``dim`` numbers; naming the file, for vectors of
    another dimension, or a word2vec count that is not the number of lines.
    """
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError(f"{path}: empty file, no word vectors in it")
    fields = first[1].split()
    header = len(fields) == 2 and all(field.isdigit() for field in fields)
    announced, file_dim = (int(fields[0]), int(fields[1])) if header else (None, len(fields) - 1)
    if file_dim != dim:
        raise DataError(f"{path}: vectors of {file_dim} dimensions, but model.embedding_dim={dim} (set "
                        f"model.embedding_dim={file_dim}, or use {dim}-dimensional vectors)")
    found: dict[str, Tensor] = {}
    count = 0
    for number, line in (lines if header else chain([first], lines)):
        fields = line.rsplit(" ", dim)
        if len(fields) != dim + 1 or not fields[0]:
            raise DataError(f"{path}:{number}: expected a word and {dim} numbers separated by spaces, found "
                            f"{len(line.split())} fields")
        count += 1
        word = fields[0]
        if word in wanted and word not in found:
            found[word] = _vector(fields[1:], f"{path}:{number}")
    if header and count != announced:
        raise DataError(f"{path}: the first line announces {announced} vectors, the file holds {count}")
    return found


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its end and trailing spaces) of every line that is not blank."""
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                line = raw.decode("utf-8").rstrip()
            except UnicodeDecodeError:
                raise DataError(f"{path}:{number}: not UTF-8 text (word2vec's binary format is not read: save the "
                                "vectors as text)") from None
            if line:
                yield number, line


def _vector(fields: list[str], where: str) -> Tensor:
    try:
        vector = torch.tensor([float(field) for field in fields])
    except ValueError as err:
        raise DataError(f"{where}: {err}") from None
    if not torch.isfinite(vector).all():
        raise DataError(f"{where}: a vector with an infinite or NaN entry")
    return vector
