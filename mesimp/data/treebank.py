"""Dependency treebanks: CoNLL-U / CoNLL-X and ``.dp`` readers, projectivity, punctuation, named datasets.

Heads are 1-based with 0 for the root, as in the files. Every malformed input raises ``DataError`` with a
one-line message that starts with ``FILE:LINE:``.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mesimp.errors import DataError, UserError

SPLITS = ("train", "dev", "test")

# The 17 universal POS tags: column 4 counts as UPOS only if every token in the file carries one of these,
# since in CoNLL-X that column is a treebank-specific coarse tag (often just the PTB tag again).
UPOS_TAGS = frozenset(
    "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
)

# PTB tags that count as punctuation when no UPOS is available (CoNLL-X shared task / Chen & Manning 2014).
# -LRB-, -RRB-, # and $ are deliberately not in it: that convention scores them.
PUNCT_TAGS = frozenset({"``", "''", ",", ".", ":"})

CONLL_SUFFIXES = frozenset({".conllu", ".conll", ".conllx"})
DP_SUFFIXES = frozenset({".dp"})

_INT = re.compile(r"-?[0-9]+")
_SKIPPED_ID = re.compile(r"[0-9]+(-|\.)[0-9]+")  # multiword tokens n-m and empty nodes n.m

# ptb_wsj_sample is split by file number, the split the data README gives.
_WSJ_RANGES = {"train": (1, 159), "dev": (160, 179), "test": (180, 199)}
DATASETS = ("ud_english_ewt", "ptb_wsj_sample")


@dataclass
class Sentence:
    words: list[str]
    upos: list[str] | None
    xpos: list[str]
    heads: list[int]  # 1-based, 0 = root
    labels: list[str] | None  # None for unlabeled data (.dp)
    source: str  # "file:line" of the first token, for messages

    def __len__(self) -> int:
        return len(self.words)


def _blocks(path: Path) -> Iterator[list[tuple[int, str]]]:
    """Yield each blank-line-separated block as (line number, line) pairs; the last needs no blank line."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        lineno = data[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{lineno}: not valid UTF-8") from None
    block: list[tuple[int, str]] = []
    # split("\n"), not splitlines(): forms may contain U+2028, U+0085 and the like
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip(" "):
            block.append((lineno, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


def _int(text: str, what: str, where: str) -> int:
    if not _INT.fullmatch(text):
        raise DataError(f"{where}: {what} must be an integer, got {text!r}")
    return int(text)


def _check_heads(heads: list[int], lines: list[int], path: Path) -> None:
    n = len(heads)
    for head, lineno in zip(heads, lines):
        if not 0 <= head <= n:
            raise DataError(f"{path}:{lineno}: HEAD {head} out of range 0..{n}")


def read_conll(path: str | Path) -> list[Sentence]:
    """Read CoNLL-U or CoNLL-X (10 tab-separated columns), skipping comments, multiword tokens and empty nodes.

    Column 4 becomes ``upos`` only if every token in the file has a universal POS tag (CoNLL-U); otherwise
    (CoNLL-X CPOSTAG) ``upos`` is None. Column 5 is ``xpos``, kept as is even when it is ``_``.
    """
    path = Path(path)
    sentences: list[Sentence] = []
    all_upos = True
    for block in _blocks(path):
        words: list[str] = []
        upos: list[str] = []
        xpos: list[str] = []
        heads: list[int] = []
        labels: list[str] = []
        lines: list[int] = []
        for lineno, line in block:
            if line.startswith("#"):
                continue
            where = f"{path}:{lineno}"
            cols = line.split("\t")
            if len(cols) != 10:
                raise DataError(f"{where}: expected 10 tab-separated columns, got {len(cols)}")
            if _SKIPPED_ID.fullmatch(cols[0]):
                continue
            token_id = _int(cols[0], "ID", where)
            if token_id != len(words) + 1:
                raise DataError(f"{where}: expected token ID {len(words) + 1}, got {token_id}")
            if not cols[1]:
                raise DataError(f"{where}: empty FORM")
            words.append(cols[1])
            upos.append(cols[3])
            xpos.append(cols[4])
            heads.append(_int(cols[6], "HEAD", where))
            labels.append(cols[7])
            lines.append(lineno)
        if not words:  # a block of comments only
            continue
        _check_heads(heads, lines, path)
        all_upos = all_upos and UPOS_TAGS.issuperset(upos)
        sentences.append(Sentence(words, upos, xpos, heads, labels, f"{path}:{lines[0]}"))
    if not all_upos:
        for sentence in sentences:
            sentence.upos = None
    return sentences


def read_dp(path: str | Path) -> list[Sentence]:
    """Read the ``.dp`` format: ``word<TAB>PTB-tag<TAB>head`` a line, blank line between sentences; unlabeled."""
    path = Path(path)
    sentences: list[Sentence] = []
    for block in _blocks(path):
        words: list[str] = []
        xpos: list[str] = []
        heads: list[int] = []
        lines: list[int] = []
        for lineno, line in block:
            where = f"{path}:{lineno}"
            cols = line.split("\t")
            if len(cols) != 3:
                raise DataError(f"{where}: expected 3 tab-separated columns (word, tag, head), got {len(cols)}")
            if not cols[0]:
                raise DataError(f"{where}: empty word")
            words.append(cols[0])
            xpos.append(cols[1])
            heads.append(_int(cols[2], "head", where))
            lines.append(lineno)
        _check_heads(heads, lines, path)
        sentences.append(Sentence(words, None, xpos, heads, None, f"{path}:{lines[0]}"))
    return sentences


def _reader(path: Path) -> Callable[[Path], list[Sentence]]:
    suffix = path.suffix.lower()
    if suffix in CONLL_SUFFIXES:
        return read_conll
    if suffix in DP_SUFFIXES:
        return read_dp
    known = ", ".join(sorted(CONLL_SUFFIXES | DP_SUFFIXES))
    raise DataError(f"{path}: unknown treebank format {suffix!r} (known: {known})")


def treebank_files(path_or_glob: str | Path) -> list[Path]:
    """The files ``read_treebank`` would read: a file, a directory's treebank files, or a glob's matches, sorted."""
    text = str(path_or_glob)
    path = Path(text).expanduser()
    if path.is_dir():
        # a data directory also holds READMEs and licences: take only what we can read
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in CONLL_SUFFIXES | DP_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no treebank files (.conllu, .conll, .conllx, .dp) in this directory")
        return files
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
        if not files:
            raise DataError(f"{text}: no file matches this pattern")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such treebank file")
    return [path]


def read_treebank(path_or_glob: str | Path) -> list[Sentence]:
    """Read a treebank file, every treebank file in a directory, or every match of a glob, in sorted order."""
    files = treebank_files(path_or_glob)
    readers = [_reader(f) for f in files]  # fail on an unknown suffix before parsing anything
    return [s for reader, f in zip(readers, files) for s in reader(f)]


def strip_subtype(label: str) -> str:
    """The universal part of a UD relation: ``nmod:poss`` -> ``nmod``."""
    return label.split(":", 1)[0]


def is_projective(heads: list[int]) -> bool:
    """True iff no two arcs cross, counting the arc from the root (0) to its dependent."""
    spans = [(min(h, d), max(h, d)) for d, h in enumerate(heads, start=1)]
    for i, (a, b) in enumerate(spans):
        for c, d in spans[i + 1 :]:
            if a < c < b < d or c < a < d < b:
                return False
    return True


def punct_mask(sentence: Sentence) -> list[bool]:
    """Which tokens are punctuation, to be left out of attachment scores (the usual convention).

    With UPOS (CoNLL-U), a token is punctuation iff its UPOS is ``PUNCT``. Without (CoNLL-X, ``.dp``), iff its
    PTB tag is one of ``PUNCT_TAGS`` = `` '' , . : -- the CoNLL-X shared task / Chen & Manning (2014) convention.
    """
    if sentence.upos is not None:
        return [tag == "PUNCT" for tag in sentence.upos]
    return [tag in PUNCT_TAGS for tag in sentence.xpos]


def _split_files(name: str, root: Path, split: str) -> list[Path]:
    if name == "ud_english_ewt":
        files = [root / name / f"en_ewt-ud-{split}.conllu"]
    elif name == "ptb_wsj_sample":
        first, last = _WSJ_RANGES[split]
        files = [root / name / "dep" / f"wsj_{i:04d}.dp" for i in range(first, last + 1)]
    else:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    for f in files:
        if not f.is_file():
            raise DataError(
                f"{f}: missing file of dataset {name!r}; it is expected under the data directory {root} "
                "(set data.root in the config or the MESIMP_DATA environment variable)"
            )
    return files


def dataset_files(name: str, root: Path) -> dict[str, list[Path]]:
    """The files of each split of a named dataset under the data root."""
    return {split: _split_files(name, Path(root), split) for split in SPLITS}


def load_splits(
    name: str | None,
    root: Path,
    train: str | Path | None = None,
    dev: str | Path | None = None,
    test: str | Path | None = None,
) -> dict[str, list[Sentence]]:
    """Read train/dev/test: an explicit path (file, directory or glob) for a split overrides the named dataset."""
    explicit = {"train": train, "dev": dev, "test": test}
    missing = [split for split in SPLITS if explicit[split] is None]
    if name is None and missing:  # before any parsing, so a config mistake shows at once
        raise UserError(f"no {'/'.join(missing)} data: name a dataset ({', '.join(DATASETS)}) or give their paths")
    if name is not None and name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    splits: dict[str, list[Sentence]] = {}
    for split in SPLITS:
        if explicit[split] is not None:
            splits[split] = read_treebank(explicit[split])
        else:
            assert name is not None  # checked above
            splits[split] = [s for f in _split_files(name, Path(root), split) for s in _reader(f)(f)]
    return splits
