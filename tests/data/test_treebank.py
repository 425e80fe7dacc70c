import logging
import re
from pathlib import Path

import pytest

from mesimp.data.treebank import (
    PUNCT_TAGS,
    Sentence,
    dataset_files,
    is_projective,
    load_splits,
    punct_mask,
    read_conll,
    read_dp,
    read_treebank,
    strip_subtype,
    tree_defect,
)
from mesimp.errors import DataError, UserError


def row(*cols: object) -> str:
    return "\t".join(map(str, cols))


def tok(i: object, form: str, upos: str, xpos: str, head: object, rel: str) -> str:
    return row(i, form, "_", upos, xpos, "_", head, rel, "_", "_")


CONLLU = "\n".join(
    [
        "# sent_id = 1",
        "# text = Don't go.",
        row("1-2", "Don't", "_", "_", "_", "_", "_", "_", "_", "_"),
        tok(1, "Do", "AUX", "VBP", 3, "aux"),
        tok(2, "n't", "PART", "RB", 3, "advmod"),
        tok(3, "go", "VERB", "VB", 0, "root"),
        row("3.1", "went", "go", "VERB", "VBD", "_", "_", "_", "3:conj", "_"),
        tok(4, ".", "PUNCT", ".", 3, "punct"),
        "",
        "# sent_id = 2",
        tok(1, "Hi", "INTJ", "UH", 0, "root"),
        tok(2, "!", "PUNCT", "_", 1, "punct"),
        "",
    ]
)

CONLLX = "\n".join(
    [
        tok(1, "Prices", "NNS", "NNS", 2, "nsubj"),
        tok(2, "rose", "VBD", "VBD", 0, "root"),
        tok(3, ",", ",", ",", 2, "punct"),
        tok(4, "-LRB-", "-LRB-", "-LRB-", 2, "dep"),
        tok(5, "''", "''", "''", 2, "punct"),
        "",
    ]
)

DP = "Pierre\tNNP\t2\nVinken\tNNP\t0\n.\t.\t2\n\nHi\tUH\t0\n"


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def test_conllu_skips_comments_multiword_and_empty_nodes(tmp_path: Path) -> None:
    path = write(tmp_path, "a.conllu", CONLLU)
    first, second = read_conll(path)
    assert first.words == ["Do", "n't", "go", "."]
    assert first.heads == [3, 3, 0, 3]
    assert first.labels == ["aux", "advmod", "root", "punct"]
    assert first.upos == ["AUX", "PART", "VERB", "PUNCT"]
    assert first.xpos == ["VBP", "RB", "VB", "."]
    assert first.source == f"{path}:4"
    assert second.words == ["Hi", "!"] and second.heads == [0, 1]
    assert second.xpos == ["UH", "_"]  # `_` is kept, the caller decides
    assert second.source == f"{path}:11"


def test_conllx_has_no_upos(tmp_path: Path) -> None:
    (sentence,) = read_conll(write(tmp_path, "a.conll", CONLLX))
    assert sentence.upos is None
    assert sentence.xpos == ["NNS", "VBD", ",", "-LRB-", "''"]
    assert sentence.heads == [2, 0, 2, 2, 2]
    assert sentence.labels == ["nsubj", "root", "punct", "dep", "punct"]


def test_bom_crlf_and_no_trailing_blank_line(tmp_path: Path) -> None:
    text = CONLLU.rstrip("\n").replace("\n", "\r\n")
    sentences = read_conll(write(tmp_path, "a.conllu", text, encoding="utf-8-sig"))
    assert [s.words for s in sentences] == [["Do", "n't", "go", "."], ["Hi", "!"]]
    assert sentences[1].labels == ["root", "punct"]


def test_dp(tmp_path: Path) -> None:
    path = write(tmp_path, "a.dp", DP + "\n\n")
    first, second = read_dp(path)
    assert first.words == ["Pierre", "Vinken", "."]
    assert first.xpos == ["NNP", "NNP", "."]
    assert first.heads == [2, 0, 2]
    assert first.upos is None and first.labels is None
    assert second.source == f"{path}:5"
    assert len(read_dp(write(tmp_path, "b.dp", DP.rstrip("\n")))) == 2


BAD_CONLL = [
    (tok(2, "go", "VERB", "VB", 0, "root").rsplit("\t", 3)[0], 3, "10 tab-separated columns, got 7"),
    (tok(2, "go", "VERB", "VB", "x", "root"), 3, "HEAD"),
    (tok(3, "go", "VERB", "VB", 0, "root"), 3, "expected token ID 2, got 3"),
    (tok("two", "go", "VERB", "VB", 0, "root"), 3, "ID"),
    (tok(2, "", "VERB", "VB", 0, "root"), 3, "empty FORM"),
]


@pytest.mark.parametrize("bad_line, lineno, message", BAD_CONLL)
def test_conll_errors_name_file_and_line(tmp_path: Path, bad_line: str, lineno: int, message: str) -> None:
    lines = ["# c", tok(1, "We", "PRON", "PRP", 2, "nsubj"), bad_line, tok(3, "x", "X", "FW", 2, "obj"), ""]
    path = write(tmp_path, "bad.conllu", "\n".join(lines))
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}:{lineno}: .*{message}") as info:
        read_conll(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "bad_line, message", [("Vinken\tNNP", "3 tab-separated columns"), ("Vinken\tNNP\troot", "head")]
)
def test_dp_errors_name_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = write(tmp_path, "bad.dp", f"Hi\tUH\t0\n\nPierre\tNNP\t2\n{bad_line}\n")
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}:4: .*{message}"):
        read_dp(path)


# heads of a 5-token sentence, the token blamed, the message
TREE_DEFECTS = [
    ([2, 0, 9, 2, 2], 3, "HEAD 9 out of range 0..5"),
    ([2, 0, -1, 2, 2], 3, "HEAD -1 out of range 0..5"),
    ([2, 0, 3, 2, 2], 3, "token 3 is its own head"),
    ([2, 3, 1, 5, 4], 1, "no token has HEAD 0 (no root)"),
    ([0, 1, 1, 1, 0], 5, "2 roots: tokens 1 and 5 have HEAD 0"),
    ([0, 0, 1, 1, 0], 2, "3 roots: tokens 1, 2 and 5 have HEAD 0"),
    ([0, 4, 2, 2, 1], 2, "cycle through tokens 2 -> 4 -> 2"),
    ([0, 4, 5, 3, 4], 3, "cycle through tokens 3 -> 5 -> 4 -> 3"),  # entered at 4, told from its lowest token
]


def test_tree_defect_accepts_trees() -> None:
    assert tree_defect([2, 0, 2, 5, 3]) is None
    assert tree_defect([0]) is None
    assert tree_defect([3, 4, 0, 3]) is None  # non-projective is still a tree


def treebank_with(fmt: str, heads: list[int]) -> tuple[str, int]:
    """A file of three sentences, the second with ``heads``; the line of its first token."""
    if fmt == "dp":
        bad = "".join(f"w{i}\tNN\t{h}\n" for i, h in enumerate(heads, start=1))
        return f"Hi\tUH\t0\n\n{bad}\nBye\tUH\t0\n", 3
    bad = "\n".join(tok(i, f"w{i}", "NOUN", "NN", h, "dep") for i, h in enumerate(heads, start=1))
    multiword = row("1-2", "w1w2", "_", "_", "_", "_", "_", "_", "_", "_")
    return f"{tok(1, 'Hi', 'INTJ', 'UH', 0, 'root')}\n\n# sent_id = 2\n{multiword}\n{bad}\n\n" \
        f"{tok(1, 'Bye', 'INTJ', 'UH', 0, 'root')}\n", 5


@pytest.mark.parametrize("fmt", ["conllu", "dp"])
@pytest.mark.parametrize("heads, token, message", TREE_DEFECTS)
def test_bad_trees_stop_or_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture, fmt: str,
                                       heads: list[int], token: int, message: str) -> None:
    text, first_line = treebank_with(fmt, heads)
    path = write(tmp_path, f"a.{fmt}", text)
    where = f"{path}:{first_line + token - 1}: {message}"
    assert tree_defect(heads) == (token, message)
    assert [s.tree_error for s in read_treebank(path)] == [None, where, None]  # read, not refused
    with pytest.raises(DataError) as info:
        load_splits(None, tmp_path, train=path, dev=path, test=path)
    assert str(info.value) == f"{where}; data.skip_bad_trees=true skips such sentences"
    with caplog.at_level(logging.WARNING, logger="mesimp.data.treebank"):
        splits = load_splits(None, tmp_path, train=path, dev=path, test=path, skip_bad_trees=True)
    assert {split: [s.words for s in v] for split, v in splits.items()} == dict.fromkeys(splits, [["Hi"], ["Bye"]])
    skipped = "skipped 1 of 3 sentences whose heads are not a tree, the first"
    assert caplog.messages == [f"{split} split: {skipped}: {where}" for split in ("train", "dev", "test")]
    # tagging never reads heads: every sentence is kept
    tagging = load_splits(None, tmp_path, train=path, dev=path, test=path, kind="tags")
    assert [len(s) for s in tagging["dev"]] == [1, 5, 1]


def test_heads_underscore_is_for_tagging_only(tmp_path: Path) -> None:
    rows = [row(1, "Hi", "_", "INTJ", "UH", *"_____"), row(2, "!", "_", "PUNCT", ".", *"_____")]
    path = write(tmp_path, "tags.conllu", "# tags only\n" + "\n".join(rows) + "\n")
    (sentence,) = read_conll(path)
    assert sentence.heads is None and sentence.labels is None and sentence.tree_error is None
    splits = load_splits(None, tmp_path, train=path, dev=path, test=path, kind="tags")
    assert splits["test"][0].xpos == ["UH", "."]
    with pytest.raises(DataError) as info:
        load_splits(None, tmp_path, train=path, dev=path, test=path)
    assert str(info.value) == (f"{path}:2: no dependency heads (a constituency tree (.mrg), or HEAD _); "
                               "parsing needs CoNLL-U/CoNLL-X or .dp files with heads")


@pytest.mark.parametrize("kind", ["dependency", "tags"])
@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_split_names_split_and_file(tmp_path: Path, kind: str, text: str) -> None:
    good = write(tmp_path, "good.conllu", CONLLU)
    empty = write(tmp_path, "empty.conllu", text)
    with pytest.raises(DataError) as info:
        load_splits(None, tmp_path, train=good, dev=empty, test=good, kind=kind)
    assert str(info.value) == f"{empty}: no sentences in the dev split"
    more = tmp_path / "more"
    more.mkdir()
    write(more, "b.conllu", text)
    write(more, "c.conllu", text)
    with pytest.raises(DataError) as info:
        load_splits(None, tmp_path, train=good, dev=good, test=more, kind=kind)
    assert str(info.value) == f"{more / 'b.conllu'} .. {more / 'c.conllu'} (2 files): no sentences in the test split"


def test_split_of_bad_trees_only_is_empty_once_skipped(tmp_path: Path) -> None:
    good = write(tmp_path, "good.conllu", CONLLU)
    bad = write(tmp_path, "bad.dp", "a\tDT\t1\n\nb\tDT\t0\nc\tDT\t0\n")
    with pytest.raises(DataError) as info:
        load_splits(None, tmp_path, train=bad, dev=good, test=good, skip_bad_trees=True)
    assert str(info.value) == f"{bad}: no sentence of the train split has heads that form a tree (2 skipped)"


def test_read_treebank_dispatch_glob_and_directory(tmp_path: Path) -> None:
    u = write(tmp_path, "b.conllu", CONLLU)
    write(tmp_path, "c.conllx", CONLLX)
    write(tmp_path, "a.dp", DP)
    write(tmp_path, "README.md", "not a treebank")
    assert len(read_treebank(u)) == 2
    assert len(read_treebank(str(tmp_path / "c.conllx"))) == 1
    assert read_treebank(tmp_path / "a.dp")[0].labels is None
    # a directory: its treebank files in sorted order, other files ignored
    assert [s.words[0] for s in read_treebank(tmp_path)] == ["Pierre", "Hi", "Do", "Hi", "Prices"]
    assert [s.words[0] for s in read_treebank(str(tmp_path / "*.conll*"))] == ["Do", "Hi", "Prices"]
    with pytest.raises(DataError, match="unknown treebank format '.md'"):
        read_treebank(str(tmp_path / "*"))
    with pytest.raises(DataError, match="unknown treebank format"):
        read_treebank(tmp_path / "README.md")
    with pytest.raises(DataError, match=r"nothing\*\.conllu: no file matches"):
        read_treebank(str(tmp_path / "nothing*.conllu"))
    with pytest.raises(DataError, match="no such treebank file"):
        read_treebank(tmp_path / "missing.conllu")


def test_strip_subtype() -> None:
    assert strip_subtype("nmod:poss") == "nmod"
    assert strip_subtype("root") == "root"


def test_is_projective() -> None:
    assert is_projective([2, 0, 2, 3])
    assert is_projective([])
    assert not is_projective([3, 4, 0, 3])  # 1<-3 crosses 2<-4
    assert not is_projective([0, 4, 1, 1])  # 2<-4 crosses 1->3
    assert not is_projective([3, 0, 2])  # 1<-3 crosses the root arc 0->2


def test_punct_mask_both_conventions() -> None:
    assert PUNCT_TAGS == {"``", "''", ",", ".", ":"}
    ud = Sentence(["Hi", "!", "$"], ["INTJ", "PUNCT", "SYM"], ["UH", ".", "$"], [0, 1, 1], None, "")
    assert punct_mask(ud) == [False, True, False]
    tags = ["``", "DT", ",", "-LRB-", ":", ".", "''", "#"]
    ptb = Sentence(tags, None, tags, [0] * 8, None, "x")
    assert punct_mask(ptb) == [True, False, True, False, True, True, True, False]


def test_named_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="ud_english_ewt, ptb_wsj_sample"):
        dataset_files("nope", tmp_path)
    with pytest.raises(DataError, match="en_ewt-ud-train.conllu.*MESIMP_DATA"):
        dataset_files("ud_english_ewt", tmp_path)
    with pytest.raises(UserError, match="no dev/test data"):
        load_splits(None, tmp_path, train=tmp_path)


def test_explicit_paths_override_named_dataset(tmp_path: Path) -> None:
    write(tmp_path, "a.dp", DP)
    ewt = tmp_path / "ud_english_ewt"
    ewt.mkdir()
    write(ewt, "en_ewt-ud-train.conllu", CONLLU)
    splits = load_splits(None, tmp_path, train=tmp_path / "a.dp", dev=str(tmp_path / "*.dp"), test=tmp_path)
    # the directory is read recursively: a.dp and ud_english_ewt/en_ewt-ud-train.conllu
    assert {k: len(v) for k, v in splits.items()} == {"train": 2, "dev": 2, "test": 4}
    # dev and test files of the named dataset are absent, but never looked for
    splits = load_splits("ud_english_ewt", tmp_path, dev=tmp_path / "a.dp", test=tmp_path / "a.dp")
    assert splits["train"][0].words == ["Do", "n't", "go", "."]


@pytest.fixture(scope="module")
def ewt(shared_data: Path) -> dict[str, list[Sentence]]:
    return load_splits("ud_english_ewt", shared_data)


@pytest.fixture(scope="module")
def wsj(shared_data: Path) -> dict[str, list[Sentence]]:
    return load_splits("ptb_wsj_sample", shared_data)


def test_ewt_counts(ewt: dict[str, list[Sentence]]) -> None:
    assert {k: len(v) for k, v in ewt.items()} == {"train": 12544, "dev": 2001, "test": 2077}
    assert {k: sum(len(s) for s in v) for k, v in ewt.items()} == {"train": 204577, "dev": 25147, "test": 25094}
    non_projective = {k: sum(not is_projective(s.heads) for s in v) for k, v in ewt.items()}
    assert non_projective == {"train": 288, "dev": 31, "test": 26}
    assert all(s.upos is not None and s.labels is not None for s in ewt["train"])


def test_wsj_sample_counts(wsj: dict[str, list[Sentence]], shared_data: Path) -> None:
    assert {k: len(v) for k, v in wsj.items()} == {"train": 3396, "dev": 273, "test": 245}
    assert all(is_projective(s.heads) for v in wsj.values() for s in v)
    assert [len(v) for v in dataset_files("ptb_wsj_sample", shared_data).values()] == [159, 20, 20]
