"""Penn Treebank .mrg reading, comma-separated path lists, recursive directories and the kind of a named dataset."""

import re
from pathlib import Path

import pytest

from mesimp.data.treebank import dataset_files, load_splits, read_mrg, read_treebank, treebank_files
from mesimp.errors import DataError, UserError

# the NLTK / LDC layout: "( (S" at the start of a line, trees over several lines, no blank line between them
MRG = """\
( (S
    (NP-SBJ (NNP Pierre) (NNP Vinken) )
    (VP (MD will)
      (VP (VB join)
        (NP (DT the) (NN board) )))
    (. .) ))
( (S
    (NP-SBJ (-NONE- *-1) )
    (VP (VBZ is)
      (NP-PRD (NN chairman) ))
    (. .) ))

((S (NP-SBJ (-NONE- *T*-2) )))
((SINV (VP (VBD said))
    (NP-SBJ (NNP Mr.) (NNP Vinken))))
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_mrg_words_tags_and_sources(tmp_path: Path) -> None:
    path = write(tmp_path, "wsj_0001.mrg", MRG)
    first, second, third = read_mrg(path)
    assert first.words == ["Pierre", "Vinken", "will", "join", "the", "board", "."]
    assert first.xpos == ["NNP", "NNP", "MD", "VB", "DT", "NN", "."]
    assert first.upos is None and first.heads is None and first.labels is None
    assert second.words == ["is", "chairman", "."]  # the trace is dropped
    assert third.words == ["said", "Mr.", "Vinken"]  # the trace-only tree on line 13 is skipped
    assert [s.source for s in (first, second, third)] == [f"{path}:1", f"{path}:7", f"{path}:14"]


def test_mrg_bom_crlf_one_line_trees_and_no_trees(tmp_path: Path) -> None:
    text = "((S (NN a)))((S (NN b)))\r\n( (S (NN\r\n c) ) )"
    sentences = read_mrg(write(tmp_path, "a.mrg", "\ufeff" + text))
    assert [s.words for s in sentences] == [["a"], ["b"], ["c"]]
    assert sentences[2].source.endswith("a.mrg:2")
    assert read_mrg(write(tmp_path, "empty.mrg", "\n\n")) == []


BAD_MRG = [
    ("((S (NN a) (VB b))\n\n((S (NN c)))\n", 1, "unbalanced parentheses: the tree that starts here is never closed"),
    ("((S (NN a)))\n((S (NN b))))\n", 2, r"unbalanced parentheses: this '\)' closes no bracket"),
    ("((S (NN a)))\n((S\n  (NN ) (VB b)))\n", 3, "a preterminal with no word"),
    ("((S (NN a)))\nPierre Vinken\n", 2, "'Pierre' outside a tree"),
    ("((S\n  (NP (DT the) dog)))\n", 2, r"'dog' not in a \(TAG word\) pair"),
    ("((S\n  (NN a b)))\n", 2, r"'a' not in a \(TAG word\) pair"),
    ("((S (NN a)))\n( )\n", 2, r"empty brackets \(\)"),
    (b"((S (NN a)))\n((S (NN caf\xe9)))\n", 2, "not valid UTF-8"),
]


@pytest.mark.parametrize("text, lineno, message", BAD_MRG)
def test_mrg_errors_name_file_and_line(tmp_path: Path, text: str | bytes, lineno: int, message: str) -> None:
    path = write(tmp_path, "bad.mrg", text)
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}:{lineno}: {message}$") as info:
        read_mrg(path)
    assert "\n" not in str(info.value)


def test_comma_lists_recursive_directories_and_globs(tmp_path: Path) -> None:
    wsj = tmp_path / "wsj"
    for section, n in [("00", 1), ("01", 2), ("02", 3), ("10", 4)]:
        write(wsj, f"{section}/wsj_{section}{n:02d}.mrg", f"((S (NN s{section})))\n")
    write(wsj, "01/README", "not a treebank")
    write(tmp_path, "extra.mrg", "((S (NN extra)))\n")

    def first_words(paths: str | Path) -> list[str]:
        return [s.words[0] for s in read_treebank(paths)]

    # a directory: its treebank files at any depth, sorted by path; other files ignored
    assert first_words(wsj) == ["s00", "s01", "s02", "s10"]
    # a glob matching directories, then a file: in the given order, not sorted across entries
    assert first_words(f"{tmp_path}/extra.mrg, {wsj}/0[1-2],{wsj}/00") == ["extra", "s01", "s02", "s00"]
    assert [f.name for f in treebank_files(f"{wsj}/**/*.mrg")] == ["wsj_0001.mrg", "wsj_0102.mrg", "wsj_0203.mrg",
                                                                   "wsj_1004.mrg"]
    with pytest.raises(DataError, match="empty entry"):
        treebank_files(f"{wsj}/00,,{wsj}/01")
    with pytest.raises(DataError, match=r"no treebank files \(.conll, .conllu, .conllx, .dp, .mrg\)"):
        treebank_files(write(tmp_path, "docs/README", "x").parent)
    with pytest.raises(DataError, match=r"wsj/2\[0-4\]: no file matches"):
        treebank_files(f"{wsj}/00,{wsj}/2[0-4]")


def test_parsing_refuses_constituency_trees(tmp_path: Path) -> None:
    path = write(tmp_path, "a.mrg", MRG)
    conllu = write(tmp_path, "a.conllu", "1\tHi\t_\tINTJ\tUH\t_\t0\troot\t_\t_\n")
    with pytest.raises(DataError) as info:
        load_splits(None, tmp_path, train=conllu, dev=conllu, test=f"{conllu},{path}")
    assert str(info.value) == (f"{path}:1: no dependency heads (a constituency tree (.mrg), or HEAD _); "
                               "parsing needs CoNLL-U/CoNLL-X or .dp files with heads")
    splits = load_splits(None, tmp_path, train=conllu, dev=conllu, test=f"{conllu},{path}", kind="tags")
    assert [len(s) for s in splits["test"]] == [1, 7, 3, 3]
    with pytest.raises(UserError, match="unknown kind of treebank data 'pos'; known: dependency, tags"):
        load_splits(None, tmp_path, train=path, dev=path, test=path, kind="pos")


def test_wsj_sample_trees(shared_data: Path) -> None:
    tags = load_splits("ptb_wsj_sample", shared_data, kind="tags")
    assert {k: len(v) for k, v in tags.items()} == {"train": 3396, "dev": 273, "test": 245}
    sentences = [s for v in tags.values() for s in v]
    assert sum(len(s) for s in sentences) == 94084
    assert len({tag for s in sentences for tag in s.xpos}) == 45
    # the .dp files are the same sentences: the trees' words and tags, in the same order
    dependency = load_splits("ptb_wsj_sample", shared_data)
    assert [(s.words, s.xpos) for s in sentences] == [(s.words, s.xpos) for v in dependency.values() for s in v]
    files = dataset_files("ptb_wsj_sample", shared_data, kind="tags")
    assert [f.name for f in files["dev"]] == [f"wsj_{i:04d}.mrg" for i in range(160, 180)]
    assert len(read_treebank(shared_data / "ptb_wsj_sample" / "mrg")) == 3914


def test_ewt_tags_reads_the_same_conllu(shared_data: Path) -> None:
    assert dataset_files("ud_english_ewt", shared_data, kind="tags") == dataset_files("ud_english_ewt", shared_data)
