"""Parsing pipeline: vocabularies, encoding, scoring, and a short real run through the CLI."""

import json

import pytest
import torch

from mesimp.data.treebank import Sentence
from mesimp.data.vocab import NULL, ROOT
from mesimp.errors import DataError
from mesimp.tasks.parse.pipeline import ParseTask, build, build_vocabs, encode
from tests.helpers import assert_one_line_error, compose_config, train


def sentence(words, xpos, heads, labels, upos=None):
    return Sentence(words=words, upos=upos, xpos=xpos, heads=heads, labels=labels, source="test:1")


TRAIN = [
    sentence(["The", "dog", "barks", "."], ["DT", "NN", "VBZ", "."], [2, 3, 0, 3], ["det", "nsubj", "root", "punct"]),
    sentence(["the", "cat", "sleeps"], ["DT", "NN", "VBZ"], [2, 3, 0], ["det", "nsubj:pass", "root"]),
]


@pytest.mark.parametrize("subtypes", [False, True])
def test_vocabs_from_training_data(subtypes):
    cfg = compose_config("task=parse", f"data.label_subtypes={str(subtypes).lower()}")
    vocabs = build_vocabs(TRAIN, cfg)
    assert "the" in vocabs.words.stoi and "The" not in vocabs.words.stoi  # lowercased, count 2 >= min count 2
    assert "dog" not in vocabs.words.stoi  # seen once: the unknown word
    assert vocabs.labels.itos[-1] == NULL
    expected = {"det", "nsubj", "root", "punct"} | ({"nsubj:pass"} if subtypes else set())
    assert set(vocabs.labels.itos[:-1]) == expected and vocabs.num_labels == len(expected)


def test_encode_puts_root_first_and_skips_punctuation_in_scoring():
    vocabs = build_vocabs(TRAIN, compose_config("task=parse"))
    data = encode(TRAIN, vocabs)
    assert data.words.shape == (2, 5) and data.lengths.tolist() == [4, 3]
    assert data.words[0, 0] == vocabs.words[ROOT] and data.words[1, 4] == vocabs.words[NULL]
    assert data.heads[0].tolist() == [0, 2, 3, 0, 3]
    assert data.scored.tolist() == [[False, True, True, True, False], [False, True, True, True, False]]


def test_uas_and_las_count_scored_tokens_only():
    vocabs = build_vocabs(TRAIN, compose_config("task=parse"))
    data = encode(TRAIN, vocabs)
    task = ParseTask(model=None, features=None, transitions=torch.zeros(0), splits={"dev": data}, vocabs=vocabs,
                     labeled=True)
    heads, labels = data.heads.clone(), data.labels.clone()
    heads[0, 4] = 1  # punctuation: not scored
    labels[1, 2] = labels[1, 1]  # a wrong label
    heads[1, 3] = 1  # a wrong head
    task.parse = lambda _: (heads, labels)
    assert task.evaluate("dev") == pytest.approx(100 * 5 / 6)
    assert task.last_details["las"] == pytest.approx(100 * 4 / 6)


def test_short_real_parse_run(tmp_path, shared_data):
    overrides = ["task=parse", "data.train_limit=1000", "epochs=2", "batch_size=500", "evals_per_epoch=1"]
    result = train(*overrides, runs=tmp_path, data=shared_data)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "parse" / "batch_size=500,data.train_limit=1000,epochs=2,evals_per_epoch=1"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "parse" and metrics["method"] == "full" and metrics["epochs_run"] == 2
    assert 40.0 < metrics["best_dev"] <= 100.0  # 166 updates on 1,000 sentences already parse (about 60 UAS)
    assert 0.0 < metrics["test_las"] <= metrics["test_at_best_dev"]
    assert metrics["decode_sents_per_s"] > 0 and metrics["hidden_dims"] == [500, 500]


CONLLU = """# sent_id = 1
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tdog\tdog\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tbarks\tbark\tVERB\tVBZ\t_\t0\troot\t_\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

1\tA\ta\tDET\tDT\t_\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tsleeps\tsleep\tVERB\tVBZ\t_\t0\troot\t_\t_

"""


def test_own_treebank_files_by_path_and_glob(tmp_path):
    for split in ("train-a", "train-b", "dev", "test"):
        (tmp_path / f"{split}.conllu").write_text(CONLLU)
    overrides = ["task=parse", "data.name=null", f"data.train={tmp_path}/train-*.conllu",
                 f"data.dev={tmp_path}/dev.conllu", f"data.test={tmp_path}/test.conllu", "epochs=1",
                 "batch_size=4", "model.hidden=[8]"]
    result = train(*overrides, runs=tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    (metrics_file,) = (tmp_path / "runs" / "parse").glob("*/metrics.json")  # one flat directory despite the paths
    metrics = json.loads(metrics_file.read_text())
    assert metrics["train_examples"] == 2 * (2 * 4 + 2 * 3)  # 2 files x (2n transitions per sentence)
    assert 0.0 <= metrics["test_at_best_dev"] <= 100.0 and metrics["test_las"] is not None


def test_malformed_treebank_stops_with_file_and_line(tmp_path):
    bad = CONLLU.replace("2\tcat\tcat\tNOUN\tNN\t_\t3", "2\tcat\tcat\tNOUN\tNN\t_\tX")
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.conllu").write_text(bad if split == "dev" else CONLLU)
    paths = [f"data.{split}={tmp_path}/{split}.conllu" for split in ("train", "dev", "test")]
    result = train("task=parse", "data.name=null", *paths, runs=tmp_path / "runs")
    assert_one_line_error(result, f"{tmp_path}/dev.conllu:8:")


def test_no_projective_training_sentence_is_an_error(tmp_path):
    crossing = "".join(f"{i}\tw{i}\tw\tX\tNN\t_\t{h}\tdep\t_\t_\n" for i, h in enumerate([3, 4, 0, 3], start=1))
    (tmp_path / "train.conllu").write_text(crossing)
    (tmp_path / "dev.conllu").write_text(CONLLU)
    cfg = compose_config("task=parse", "data.name=null", f"data.train={tmp_path}/train.conllu",
                         f"data.dev={tmp_path}/dev.conllu", f"data.test={tmp_path}/dev.conllu")
    with pytest.raises(DataError) as info:
        build(cfg)
    assert str(info.value) == (f"{tmp_path}/train.conllu: none of the 1 training sentences is projective, and "
                               "arc-standard learns from projective trees only")
