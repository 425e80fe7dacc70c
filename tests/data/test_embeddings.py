"""Pretrained word vectors (model.pretrained_embeddings): both text formats, the rows they set, one-line errors, and a
tiny parser trained from them on the command line."""

import json
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from mesimp.data.embeddings import read_vectors, vectors_file
from mesimp.data.vocab import Vocab
from mesimp.errors import DataError
from mesimp.tasks.common import init_word_vectors
from tests.helpers import assert_one_line_error, compose_config, train

VECTORS = {"the": [0.5, -1.0, 2.0], "paris": [1.0, 2.0, 3.0], "Paris": [4.0, 5.0, 6.0], "dog": [0.0, 0.25, -0.75]}


def write_vectors(path: Path, vectors: dict, word2vec: bool) -> Path:
    lines = [f"{word} {' '.join(str(v) for v in vector)}" for word, vector in vectors.items()]
    header = [f"{len(vectors)} {len(next(iter(vectors.values())))}"] if word2vec else []
    path.write_text("\n".join(header + lines) + "\n")
    return path


@pytest.mark.parametrize("word2vec", [False, True])
def test_both_formats_give_the_wanted_vectors(tmp_path, word2vec):
    path = write_vectors(tmp_path / "vectors.txt", VECTORS, word2vec)
    found = read_vectors(path, {"the", "Paris", "cat"}, 3)
    assert set(found) == {"the", "Paris"}
    assert found["the"].tolist() == VECTORS["the"] and found["Paris"].tolist() == VECTORS["Paris"]


def test_a_word_with_spaces_is_read_whole(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("the 1 2\nat & t 3 4\n")
    assert read_vectors(path, {"at & t"}, 2)["at & t"].tolist() == [3.0, 4.0]


@pytest.mark.parametrize("lowercase", [True, False])
def test_rows_of_vocabulary_words_are_set_and_counted(tmp_path, caplog, lowercase):
    """The word as the vocabulary has it, else its lowercase; other rows (specials, unknown words) stay random."""
    path = write_vectors(tmp_path / "vectors.txt", VECTORS, word2vec=False)
    cfg = compose_config("task=parse", f"model.pretrained_embeddings={path}", "model.embedding_dim=3")
    words = Vocab(["the", "cat", "paris"] if lowercase else ["The", "cat", "Paris"])
    table = nn.Embedding(len(words), 3)
    before = table.weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="mesimp.tasks.common"):
        init_word_vectors(cfg, table, words)
    rows = table.weight.detach()
    paris = "paris" if lowercase else "Paris"
    assert rows[words.stoi["the" if lowercase else "The"]].tolist() == VECTORS["the"]
    assert rows[words.stoi[paris]].tolist() == VECTORS[paris]
    untouched = [i for i, word in enumerate(words.itos) if word not in ("the", "The", "paris", "Paris")]
    assert torch.equal(rows[untouched], before[untouched])
    assert f"pretrained embeddings: 2 of 3 vocabulary words found in {path}" in caplog.text


@pytest.mark.parametrize("content,fragment", [
    ("the 1 2 3\ndog 1 2\n", "vectors.txt:2: expected a word and 3 numbers separated by spaces, found 3 fields"),
    ("2 3\nthe 1 2 3\n\ndog 1 x 3\n", "vectors.txt:4: could not convert string to float: 'x'"),
    ("the 1 2 nan\n", "vectors.txt:1: a vector with an infinite or NaN entry"),
    ("3 3\nthe 1 2 3\ndog 1 2 3\n", "vectors.txt: the first line announces 3 vectors, the file holds 2"),
    ("the 1 2 3 4\n", "vectors.txt: vectors of 4 dimensions, but model.embedding_dim=3 (set model.embedding_dim=4"),
    ("1 300\nthe 1 2 3\n", "vectors.txt: vectors of 300 dimensions, but model.embedding_dim=3"),
    ("", "vectors.txt: empty file"),
])
def test_malformed_files_are_one_line_errors(tmp_path, content, fragment):
    path = tmp_path / "vectors.txt"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_vectors(path, {"the", "dog"}, 3)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_binary_word2vec_and_missing_files_are_one_line_errors(tmp_path):
    path = tmp_path / "vectors.bin"
    path.write_bytes(b"1 3\nthe \x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\n")
    with pytest.raises(DataError, match=r"vectors\.bin:2: not UTF-8 text \(word2vec's binary format is not read"):
        read_vectors(path, {"the"}, 3)
    with pytest.raises(DataError, match=r"nowhere\.txt: no such file \(model\.pretrained_embeddings\)"):
        vectors_file(str(tmp_path / "nowhere.txt"))


def ewt_sample(tmp_path: Path, shared_data: Path, sentences: int) -> list[str]:
    """The first sentences of each EWT split as files in tmp_path: the overrides that train on them."""
    overrides = ["task=parse", "data.name=null"]
    for split in ("train", "dev", "test"):
        text = (shared_data / "ud_english_ewt" / f"en_ewt-ud-{split}.conllu").read_text()
        path = tmp_path / f"{split}.conllu"
        path.write_text("\n\n".join(text.split("\n\n")[:sentences]) + "\n\n")
        overrides.append(f"data.{split}={path}")
    return overrides


def test_tiny_parser_trains_from_pretrained_vectors(tmp_path, shared_data):
    data = ewt_sample(tmp_path, shared_data, 40)
    path = write_vectors(tmp_path / "glove.txt", {"the": [0.1] * 50, "of": [0.2] * 50, "zyzzyva": [0.3] * 50},
                         word2vec=False)
    tiny = [*data, "epochs=1", "model.hidden=[8]", "batch_size=50", "evals_per_epoch=1", "threads=1"]
    result = train(*tiny, f"model.pretrained_embeddings={path}", runs=tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "pretrained embeddings: 2 of " in output and f"vocabulary words found in {path}" in output
    # 40 sentences give about 1,900 transitions: a warning that 50 a minibatch is too many for so few examples
    assert "WARNING" in output and "updates per epoch (batch_size=50, " in output
    assert "on a small data set lower batch_size (e.g. to " in output
    metrics = json.loads(next((tmp_path / "runs" / "parse").glob("*/metrics.json")).read_text())
    assert metrics["data"][-1]["file"] == str(path) and len(metrics["data"]) == 4

    wrong = write_vectors(tmp_path / "wide.txt", {"the": [0.1] * 60}, word2vec=True)
    result = train(*tiny, f"model.pretrained_embeddings={wrong}", runs=tmp_path / "runs")
    assert_one_line_error(result, f"{wrong}: vectors of 60 dimensions, but model.embedding_dim=50")
    missing = tmp_path / "missing.txt"
    result = train(*tiny, f"model.pretrained_embeddings={missing}", runs=tmp_path / "runs")
    assert_one_line_error(result, f"{missing}: no such file (model.pretrained_embeddings)")
    result = train("task=mnist", f"model.pretrained_embeddings={path}", runs=tmp_path / "runs")
    assert_one_line_error(result, "model.pretrained_embeddings is for the word embeddings of task=parse and task=pos")
