"""Treebanks: CoNLL-U / CoNLL-X and ``.dp`` dependency readers, a Penn Treebank ``.mrg`` reader (words and tags
only), projectivity, punctuation, named datasets.

Heads are 1-based with 0 for the root, as in the files; sentences read from ``.mrg`` have none (nothing is
converted to dependencies, so there is no tree to check), nor do CoNLL sentences whose HEAD is ``_``. Every
malformed input raises ``DataError`` with a one-line message that starts with ``FILE:LINE:``. Heads that do not
form a tree are not malformed for tagging, which never reads them: the readers note the defect in
``Sentence.tree_error``, and ``load_splits`` refuses or skips such sentences only for dependency data.
"""

from __future__ import annotations

import bisect
import glob
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mesimp.errors import DataError, UserError

log = logging.getLogger(__name__)

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
MRG_SUFFIXES = frozenset({".mrg"})

_INT = re.compile(r"-?[0-9]+")
_SKIPPED_ID = re.compile(r"[0-9]+(-|\.)[0-9]+")  # multiword tokens n-m and empty nodes n.m

# ptb_wsj_sample is split by file number, the split the data README gives.
_WSJ_RANGES = {"train": (1, 159), "dev": (160, 179), "test": (180, 199)}
DATASETS = ("ud_english_ewt", "ptb_wsj_sample")
# What a named dataset is read for: "dependency" needs heads (ptb_wsj_sample: dep/*.dp), "tags" only words and
# POS tags (ptb_wsj_sample: the gold constituency trees mrg/*.mrg).
KINDS = ("dependency", "tags")


@dataclass
class Sentence:
    words: list[str]
    upos: list[str] | None
    xpos: list[str]
    heads: list[int] | None  # 1-based, 0 = root; None for constituency trees (.mrg) and CoNLL HEAD "_"
    labels: list[str] | None  # None for unlabeled data (.dp)
    source: str  # "file:line" where the sentence starts, for messages
    tree_error: str | None = None  # "FILE:LINE: what is wrong" when heads are not a tree (see tree_defect)

    def __len__(self) -> int:
        return len(self.words)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        lineno = data[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{lineno}: not valid UTF-8") from None


def _blocks(path: Path) -> Iterator[list[tuple[int, str]]]:
    """Yield each blank-line-separated block as (line number, line) pairs; the last needs no blank line."""
    block: list[tuple[int, str]] = []
    # split("\n"), not splitlines(): forms may contain U+2028, U+0085 and the like
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
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


def tree_defect(heads: list[int]) -> tuple[int, str] | None:
    """Why ``heads`` (1-based, 0 = root) is not a tree with one root: (the token to blame, message), or None.

    One root, as UD requires: arc-standard (``mesimp.tasks.parse.arcstandard``) gives ROOT exactly one child.
    The token blamed is the offending one: the second root, the lowest token of a cycle; with no root, token 1.
    """
    n = len(heads)
    for token, head in enumerate(heads, start=1):
        if not 0 <= head <= n:
            return token, f"HEAD {head} out of range 0..{n}"
        if head == token:
            return token, f"token {token} is its own head"
    roots = [token for token, head in enumerate(heads, start=1) if head == 0]
    if not roots:
        return 1, "no token has HEAD 0 (no root)"
    if len(roots) > 1:
        listed = ", ".join(map(str, roots[:-1])) + f" and {roots[-1]}"
        return roots[1], f"{len(roots)} roots: tokens {listed} have HEAD 0"
    reaches_root = [True] + [False] * n  # by position; 0 is ROOT
    for start in range(1, n + 1):
        path: list[int] = []
        token = start
        while not reaches_root[token] and token not in path:
            path.append(token)
            token = heads[token - 1]
        if not reaches_root[token]:  # the walk up the heads came back to a token on it
            cycle = path[path.index(token) :]
            first = cycle.index(min(cycle))
            cycle = cycle[first:] + cycle[:first]
            return cycle[0], f"cycle through tokens {' -> '.join(map(str, [*cycle, cycle[0]]))}"
        for t in path:
            reaches_root[t] = True
    return None


def _tree_error(heads: list[int], lines: list[int], path: Path) -> str | None:
    defect = tree_defect(heads)
    if defect is None:
        return None
    token, message = defect
    return f"{path}:{lines[token - 1]}: {message}"


def read_conll(path: str | Path) -> list[Sentence]:
    """Read CoNLL-U or CoNLL-X (10 tab-separated columns), skipping comments, multiword tokens and empty nodes.

    Column 4 becomes ``upos`` only if every token in the file has a universal POS tag (CoNLL-U); otherwise
    (CoNLL-X CPOSTAG) ``upos`` is None. Column 5 is ``xpos``, kept as is even when it is ``_``. A sentence with
    HEAD ``_`` on any token has neither heads nor labels.
    """
    path = Path(path)
    sentences: list[Sentence] = []
    all_upos = True
    for block in _blocks(path):
        words: list[str] = []
        upos: list[str] = []
        xpos: list[str] = []
        heads: list[int | None] = []
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
            heads.append(None if cols[6] == "_" else _int(cols[6], "HEAD", where))
            labels.append(cols[7])
            lines.append(lineno)
        if not words:  # a block of comments only
            continue
        all_upos = all_upos and UPOS_TAGS.issuperset(upos)
        source = f"{path}:{lines[0]}"
        if None in heads:  # a file annotated for tags only: no tree, as in .mrg
            sentences.append(Sentence(words, upos, xpos, None, None, source))
        else:
            sentences.append(Sentence(words, upos, xpos, heads, labels, source, _tree_error(heads, lines, path)))
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
        tree_error = _tree_error(heads, lines, path)
        sentences.append(Sentence(words, None, xpos, heads, None, f"{path}:{lines[0]}", tree_error))
    return sentences


# One lexeme of a bracketed tree. A whole preterminal ``(TAG word)`` is one match, so the Python loop runs about
# twice per constituent rather than once per character. re.ASCII: only ASCII whitespace separates tokens, as
# in _blocks, so a word may contain U+00A0 and the like.
_MRG_LEXEME = re.compile(
    r"(?P<leaf>\(\s*(?P<tag>[^\s()]+)\s+(?P<word>[^\s()]+)\s*\))"
    r"|(?P<node>\(\s*[^\s()]+)"  # "(S", "(NP-SBJ": the label is not needed
    r"|(?P<wrapper>\()"  # the unlabelled outer bracket of "( (S ...) )"
    r"|(?P<close>\))"
    r"|(?P<stray>[^\s()]+)",  # a word that is not in a (TAG word) pair
    re.ASCII,
)


def _mrg_trees(text: str, where: Callable[[int], str]) -> Iterator[tuple[int, list[str], list[str]]]:
    """Yield (offset of the tree's first bracket, words, tags) for each tree with a word left after dropping
    ``-NONE-`` leaves; ``where(offset)`` gives the ``FILE:LINE`` for messages."""
    depth = 0
    start = 0
    previous = None
    words: list[str] = []
    tags: list[str] = []
    for m in _MRG_LEXEME.finditer(text):
        kind = m.lastgroup
        if depth == 0:
            start = m.start()
        if kind == "leaf":
            tag, word = m.group("tag", "word")
            if tag != "-NONE-":  # traces and other empty elements are not words of the sentence
                words.append(word)
                tags.append(tag)
        elif kind == "close":
            if depth == 0:
                raise DataError(f"{where(m.start())}: unbalanced parentheses: this ')' closes no bracket")
            if previous == "node":
                raise DataError(f"{where(m.start())}: a preterminal with no word")
            if previous == "wrapper":
                raise DataError(f"{where(m.start())}: empty brackets ()")
            depth -= 1
        elif kind == "stray":
            place = "outside a tree" if depth == 0 else "not in a (TAG word) pair"
            raise DataError(f"{where(m.start())}: {m.group()[:40]!r} {place}")
        else:
            depth += 1
        if depth == 0:
            if words:
                yield start, words, tags
            words, tags = [], []
        previous = kind
    if depth:
        raise DataError(f"{where(start)}: unbalanced parentheses: the tree that starts here is never closed")


def read_mrg(path: str | Path) -> list[Sentence]:
    """Read Penn Treebank bracketed trees (``.mrg``): each preterminal ``(TAG word)`` is a token.

    Only words and POS tags (``xpos``) are kept: no heads, labels or UPOS. ``-NONE-`` leaves (traces) are
    dropped, and a tree left with no word is skipped. ``source`` is the line of the tree's first bracket.
    """
    path = Path(path)
    text = _read_text(path)
    newlines = [m.start() for m in re.finditer("\n", text)]

    def where(offset: int) -> str:
        return f"{path}:{bisect.bisect_left(newlines, offset) + 1}"

    return [Sentence(words, None, tags, None, None, where(start)) for start, words, tags in _mrg_trees(text, where)]


_READERS: dict[str, Callable[[Path], list[Sentence]]] = {
    **dict.fromkeys(CONLL_SUFFIXES, read_conll),
    **dict.fromkeys(DP_SUFFIXES, read_dp),
    **dict.fromkeys(MRG_SUFFIXES, read_mrg),
}


def _reader(path: Path) -> Callable[[Path], list[Sentence]]:
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise DataError(f"{path}: unknown treebank format {suffix!r} (known: {', '.join(sorted(_READERS))})")
    return _READERS[suffix]


def _directory_files(path: Path) -> list[Path]:
    # a data directory also holds READMEs and licences: take only what we can read. Recursive, so that the LDC
    # layout wsj/00 .. wsj/24 is one directory.
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _READERS)
    if not files:
        raise DataError(f"{path}: no treebank files ({', '.join(sorted(_READERS))}) in this directory or below")
    return files


def _part_files(text: str) -> list[Path]:
    """The files of one entry of the list: a file, a directory, or a glob (whose matches may be directories)."""
    path = Path(text).expanduser()
    if glob.has_magic(text):
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        if not matches:
            raise DataError(f"{text}: no file matches this pattern")
    elif path.exists():
        matches = [path]
    else:
        raise DataError(f"{path}: no such treebank file or directory")
    # a file named explicitly (or by a glob) is taken whatever its suffix, so that a wrong one is reported
    return [f for p in matches for f in (_directory_files(p) if p.is_dir() else [p])]


def treebank_files(paths: str | Path) -> list[Path]:
    """The files ``read_treebank`` would read, in that order.

    ``paths`` is a comma-separated list, read in the given order, of files, directories (their treebank files,
    searched recursively, sorted by path) and globs (their matches, sorted; a matching directory counts as a
    directory). E.g. ``/ptb/wsj/0[0-9],/ptb/wsj/1[0-8]``: WSJ sections 00-18.
    """
    parts = [part.strip() for part in str(paths).split(",")]
    if not all(parts):
        raise DataError(f"{paths}: empty entry in this comma-separated list of treebank paths")
    return [f for part in parts for f in _part_files(part)]


def _read_files(files: list[Path]) -> list[Sentence]:
    readers = [_reader(f) for f in files]  # fail on an unknown suffix before parsing anything
    return [s for reader, f in zip(readers, files) for s in reader(f)]


def read_treebank(paths: str | Path) -> list[Sentence]:
    """Read treebank files, each in the format its suffix says; ``paths`` as in ``treebank_files``."""
    return _read_files(treebank_files(paths))


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


def _split_files(name: str, root: Path, split: str, kind: str) -> list[Path]:
    if name == "ud_english_ewt":
        files = [root / name / f"en_ewt-ud-{split}.conllu"]
    elif name == "ptb_wsj_sample":
        first, last = _WSJ_RANGES[split]
        folder, suffix = ("dep", "dp") if kind == "dependency" else ("mrg", "mrg")
        files = [root / name / folder / f"wsj_{i:04d}.{suffix}" for i in range(first, last + 1)]
    else:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    for f in files:
        if not f.is_file():
            raise DataError(
                f"{f}: missing file of dataset {name!r}; it is expected under the data directory {root} "
                "(set data.root in the config or the MESIMP_DATA environment variable)"
            )
    return files


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UserError(f"unknown kind of treebank data {kind!r}; known: {', '.join(KINDS)}")


def dataset_files(name: str, root: Path, kind: str = "dependency") -> dict[str, list[Path]]:
    """The files of each split of a named dataset under the data root, for ``kind`` (one of ``KINDS``)."""
    _check_kind(kind)
    return {split: _split_files(name, Path(root), split, kind) for split in SPLITS}


def _check_heads_present(sentences: list[Sentence]) -> None:
    headless = next((s for s in sentences if s.heads is None), None)
    if headless is not None:
        raise DataError(
            f"{headless.source}: no dependency heads (a constituency tree (.mrg), or HEAD _); "
            "parsing needs CoNLL-U/CoNLL-X or .dp files with heads"
        )


def _drop_bad_trees(sentences: list[Sentence], split: str, skip: bool) -> list[Sentence]:
    bad = [s for s in sentences if s.tree_error]
    if bad and not skip:
        raise DataError(f"{bad[0].tree_error}; data.skip_bad_trees=true skips such sentences")
    if bad:
        log.warning("%s split: skipped %d of %d sentences whose heads are not a tree, the first: %s", split, len(bad),
                    len(sentences), bad[0].tree_error)
    return [s for s in sentences if not s.tree_error]


def _file_list(files: list[Path]) -> str:
    # a named split or a directory may be hundreds of files: the first and the last say where
    return str(files[0]) if len(files) == 1 else f"{files[0]} .. {files[-1]} ({len(files)} files)"


def split_files(
    name: str | None,
    root: Path,
    train: str | Path | None = None,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    *,
    kind: str = "dependency",
) -> dict[str, list[Path]]:
    """The files each split is read from: explicit paths for a split (as in ``treebank_files``) override the named
    dataset's. Raises when a file is missing, before any is read."""
    _check_kind(kind)
    explicit = {"train": train, "dev": dev, "test": test}
    missing = [split for split in SPLITS if explicit[split] is None]
    if name is None and missing:  # before any parsing, so a config mistake shows at once
        raise UserError(f"no {'/'.join(missing)} data: name a dataset ({', '.join(DATASETS)}) or give their paths")
    if name is not None and name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return {split: treebank_files(explicit[split]) if explicit[split] is not None
            else _split_files(name, Path(root), split, kind) for split in SPLITS}


def load_splits(
    name: str | None,
    root: Path,
    train: str | Path | None = None,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    *,
    kind: str = "dependency",
    skip_bad_trees: bool = False,
) -> dict[str, list[Sentence]]:
    """Read train/dev/test from their ``split_files``.

    ``kind`` is what the data is for: "dependency" (every sentence must have heads, so ``.mrg`` is refused) or
    "tags" (words and POS tags; ptb_wsj_sample then reads its constituency trees). For dependency data, a
    sentence whose heads are not a tree (``tree_defect``) is an error, or with ``skip_bad_trees`` dropped from
    its split and counted in the log. A split left with no sentence is an error.
    """
    splits: dict[str, list[Sentence]] = {}
    for split, files in split_files(name, root, train, dev, test, kind=kind).items():
        sentences = _read_files(files)
        if not sentences:
            raise DataError(f"{_file_list(files)}: no sentences in the {split} split")
        if kind == "dependency":
            _check_heads_present(sentences)
            trees = _drop_bad_trees(sentences, split, skip_bad_trees)
            if not trees:
                raise DataError(f"{_file_list(files)}: no sentence of the {split} split has heads that form a "
                                f"tree ({len(sentences)} skipped)")
            sentences = trees
        splits[split] = sentences
    return splits
