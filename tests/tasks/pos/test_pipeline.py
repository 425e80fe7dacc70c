"""POS pipeline: vocabularies, encoding, accuracy, and short real runs through the CLI."""

import json

import torch

from mesimp.config import TagSet
from mesimp.data.treebank import Sentence
from mesimp.data.vocab import UNK, Fields
from mesimp.tasks.pos.pipeline import PAD_TAG, UNSEEN_TAG, PosTask, build_vocabs, encode
from tests.helpers import assert_one_line_error, train

FIELDS = Fields(lowercase=True, tagset=TagSet.xpos)


def sentence(words, tags):
    return Sentence(words=words, upos=None, xpos=tags, heads=None, labels=None, source="test:1")


TRAIN = [sentence(["The", "dog", "barks", "."], ["DT", "NN", "VBZ", "."]),
         sentence(["the", "cat", "sleeps"], ["DT", "NN", "VBZ"])]


def test_rare_and_unseen_words_are_unknown_and_unseen_tags_are_marked():
    vocabs = build_vocabs(TRAIN, FIELDS, word_min_count=2)
    assert "the" in vocabs.words.stoi and "dog" not in vocabs.words.stoi
    assert vocabs.tags.itos == [".", "DT", "NN", "VBZ"]
    data = encode([sentence(["The", "zebra", "runs"], ["DT", "NN", "VBD"])], vocabs, FIELDS)
    assert data.words[0].tolist() == [vocabs.words["the"], vocabs.words[UNK], vocabs.words[UNK]]
    assert data.tags[0].tolist() == [1, 2, UNSEEN_TAG]
    suffix3 = vocabs.features[4]
    assert data.features[0, 2, 4] == suffix3[UNK] and data.features[0, 0, 4] == suffix3["the"]


def test_batches_are_time_major_and_cut_to_the_longest():
    vocabs = build_vocabs(TRAIN, FIELDS, word_min_count=1)
    data = encode(TRAIN + [sentence(["a"], ["DT"])], vocabs, FIELDS)
    words, features, tags, lengths = data.batch(torch.tensor([1, 2]))
    assert words.shape == (3, 2) and features.shape == (3, 2, 7) and lengths.tolist() == [3, 1]
    assert tags[:, 1].tolist() == [vocabs.tags["DT"], PAD_TAG, PAD_TAG]


def test_accuracy_counts_real_tokens_and_unseen_tags_as_errors():
    vocabs = build_vocabs(TRAIN, FIELDS, word_min_count=1)
    data = encode(TRAIN[:1] + [sentence(["a", "b"], ["DT", "XX"])], vocabs, FIELDS)
    task = PosTask(model=None, train=data, splits={"dev": data})
    gold = data.tags.clone()
    gold[0, 1] = vocabs.tags["VBZ"]  # one wrong
    task.predict = lambda _: gold.clamp(min=0)  # the unseen tag becomes some real tag: still wrong
    assert task.evaluate("dev") == 100.0 * 4 / 6


def test_short_real_pos_runs_with_meprop_and_mesimp(tmp_path, shared_data):
    base = ["task=pos", "data.train_limit=200", "epochs=2", "batch_size=4", "evals_per_epoch=1",
            "model.hidden=[64]", "k=8"]
    result = train(*base, runs=tmp_path, data=shared_data)
    assert result.returncode == 0, result.stderr
    (path,) = (tmp_path / "pos").glob("*/metrics.json")
    metrics = json.loads(path.read_text())
    assert metrics["task"] == "pos" and metrics["method"] == "meprop" and metrics["epochs_run"] == 2
    assert 30.0 < metrics["best_dev"] <= 100.0  # 100 updates on 200 EWT sentences: well above chance
    assert metrics["update_ratio"] == 8 / 64 and metrics["decode_sents_per_s"] > 0  # k=8 in each gate of 64

    wsj = ["data.name=ptb_wsj_sample", "simplify=mesimp", "simplify.cycle_epochs=1", "simplify.prunes_per_epoch=2"]
    result = train(*base, *wsj, runs=tmp_path / "wsj", data=shared_data)
    assert result.returncode == 0, result.stderr
    (path,) = (tmp_path / "wsj" / "pos").glob("*/metrics.json")
    metrics = json.loads(path.read_text())
    assert metrics["method"] == "mesimp" and metrics["hidden_dims"][0] < 64 and metrics["compression"] > 1
    assert len(metrics["dims_history"]) == 2 and 0.0 <= metrics["final_test"] <= 100.0


MRG = "( (S (NP-SBJ (DT The) (NN dog)) (VP (VBZ barks)) (. .)) )\n"


def test_own_mrg_files_and_malformed_ones(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.mrg").write_text(MRG * 3)
    paths = [f"data.{split}={tmp_path}/{split}.mrg" for split in ("train", "dev", "test")]
    args = ["task=pos", "data.name=null", *paths, "epochs=1", "model.hidden=[4]"]
    result = train(*args, runs=tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    (tmp_path / "dev.mrg").write_text(MRG + "( (S (NN dog) )\n")
    result = train(*args, "seed=2", runs=tmp_path / "runs")
    assert_one_line_error(result, f"{tmp_path}/dev.mrg:2:")


def test_bad_pos_settings_are_one_line_errors(tmp_path):
    assert_one_line_error(train("task=pos", "model.hidden=[5,5]", runs=tmp_path), "one LSTM layer")
    result = train("task=pos", "data.name=null", "data.train=x.conllu", runs=tmp_path)
    assert_one_line_error(result, "task=pos needs data.name")
    result = train("task=pos", "data.name=null", *[f"data.{s}={tmp_path}" for s in ("train", "dev", "test")],
                   runs=tmp_path)
    assert_one_line_error(result, "no treebank files")
